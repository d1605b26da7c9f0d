"""Output files: checked before any compute, written atomically (a temporary file beside the
target, then a rename), so an interrupted run never leaves a half-written result. A written
file gets the mode the user's umask gives a new file (or keeps the mode of the file it
replaces), and a symlinked output is written through its link.

Outputs a user names (`--out`, `--csv`, `--figure`, ...) are claimed by the running command
(`OutputClaims`): an existing file is replaced only when this command wrote it before and nobody
changed it since (the folder's `.analysis-outputs.json` records what each command wrote, with its
size and modification time) or with `--overwrite`. Temporary files of a run killed outright (SIGKILL,
power loss) are swept on the next write into their folder once they are an hour old.

Standard library only: the CLIs use it while parsing, before torch is imported.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .errors import UserError, not_a_command

__all__ = ["check_writable", "check_distinct", "check_inputs_kept", "check_sidecar", "atomic_path", "write_atomic",
           "write_set", "write_json", "OutputClaims", "OUTPUT_CLAIMS", "MANIFEST", "sweep_stale_temporaries", "exclusive_folder"]

MANIFEST = ".analysis-outputs.json"   # per folder: {file name: {"command", "size", "mtime_ns"}}
STALE_SECONDS = 3600                  # a temporary file this old belongs to no live run of ours


class OutputClaims:
    """The outputs the running command was asked to write, and whether it may replace files it did not
    write: `command()` (`analysis._cli`) starts it after parsing; `claim(path)` refuses an existing file
    that is not this command's unchanged output (unless `overwrite`); a claimed file is recorded in its
    folder's manifest when written. Outside a command (library use) nothing is checked or recorded."""

    def __init__(self):
        self.command: Optional[str] = None
        self.overwrite = False
        self.pending: list[Path] = []   # named while parsing, before the command is known
        self.claimed: set[Path] = set()

    def start(self, command: str, overwrite: bool) -> None:
        self.command, self.overwrite = command, overwrite
        pending, self.pending = self.pending, []
        for path in pending:
            self.claim(path)

    def claim(self, path: str | os.PathLike) -> Path:
        """Mark `path` as a user-named output of the running command; refuse it if it is someone else's."""
        path = Path(path)
        if self.command is None:
            self.pending.append(path)
            return path
        real = Path(os.path.realpath(path))
        if real.exists() and not self.overwrite and not self._ours(real):
            raise UserError(f"{path} exists and was not written by python -m {self.command} (or has changed since); "
                            "pass --overwrite to replace it, or choose another name")
        self.claimed.add(real)
        return path

    def _ours(self, real: Path) -> bool:
        entry = _read_manifest(real.parent).get(real.name)
        try:
            st = real.stat()
        except OSError:
            return False
        return isinstance(entry, dict) and entry.get("command") == self.command and \
            entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns

    def written(self, real: Path) -> None:
        """Record a claimed output in its folder's manifest (best effort: a manifest that cannot be written
        only means the next run asks for --overwrite)."""
        if self.command is None or real not in self.claimed:
            return
        with contextlib.suppress(OSError), _folder_lock(real.parent):
            entries = _read_manifest(real.parent)
            st = real.stat()
            entries[real.name] = {"command": self.command, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
            fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{MANIFEST}.")
            with os.fdopen(fd, "w") as f:
                json.dump(entries, f, indent=1, sort_keys=True)
            os.replace(tmp, real.parent / MANIFEST)


OUTPUT_CLAIMS = OutputClaims()


def _read_manifest(folder: Path) -> dict:
    try:
        path = folder / MANIFEST
        if path.stat().st_size > 1 << 22:   # a manifest of 4 MiB is not ours
            return {}
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def _folder_lock(folder: Path, tries: int = 50) -> Iterator[None]:
    """The folder's lock for a manifest update, waiting up to ~1 s for another writer (an OSError after that:
    the caller gives up on recording, never blocks)."""
    for _ in range(tries):
        try:
            lock = exclusive_folder(folder, "busy")
            lock.__enter__()
            break
        except UserError:
            time.sleep(0.02)
    else:
        raise OSError(f"{folder} is locked")
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


@contextlib.contextmanager
def exclusive_folder(folder: str | os.PathLike, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (its own `flock`: nothing is left behind, and the OS drops it if the
    process dies) for a run that writes into it; a second run is refused at once with `busy` (one line)."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(busy) from None
        yield
    finally:
        os.close(fd)


def sweep_stale_temporaries(folder: str | os.PathLike, name: str) -> list[Path]:
    """Delete this module's temporary files for `name` in `folder` (`.<name>.<random><suffix>`) that are older
    than an hour: leftovers of a run killed before it could clean up. Returns what was deleted."""
    folder, swept = Path(folder), []
    now = time.time()
    with contextlib.suppress(OSError):
        for tmp in folder.glob(f".{glob.escape(name)}.*"):
            with contextlib.suppress(OSError):
                if tmp.is_file() and not tmp.is_symlink() and now - tmp.stat().st_mtime > STALE_SECONDS:
                    tmp.unlink()
                    swept.append(tmp)
    return swept



def check_writable(path: str | os.PathLike) -> Path:
    """Fail early (before any compute) if `path` cannot be written: a folder (or a name ending in `/`, which
    `Path` would drop), the folder's manifest (`MANIFEST`), or something that is not a regular file (a device,
    a FIFO: never replaced, even with --overwrite) is refused."""
    text = os.fspath(path)
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UserError(f"output path {path} is a directory")
    if isinstance(text, str) and text.endswith(("/", os.sep)):
        raise UserError(f"output path {text} ends with '/': it names a folder; give a file name, e.g. "
                        f"{text.rstrip('/' + os.sep) or '.'}/out.csv")
    if path.name == MANIFEST:
        raise UserError(f"output path {path}: {MANIFEST} is the folder's record of what the tools wrote; "
                        "choose another name")
    try:
        info = os.stat(path)
    except OSError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise UserError(f"output path {path} exists and is not a regular file (a device, FIFO or socket); "
                        "choose another name")
    if not parent.is_dir():
        raise UserError(f"output directory {parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError:
        raise UserError(f"output directory {parent} is not writable") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"output file {path} is not writable")
    # the temporary file beside it is named `.<name>.<random><suffix>`: that name must fit too
    limit = os.pathconf(parent, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    if len(os.fsencode(path.name)) + 10 + len(os.fsencode(path.suffix)) > limit:
        raise UserError(f"output file name {path.name[:40]}... is too long ({len(os.fsencode(path.name))} bytes; "
                        f"this file system allows {limit} with the temporary name's 10 more)")
    return path


def check_distinct(**outputs: Optional[str | os.PathLike]) -> None:
    """Refuse outputs of one run that would overwrite each other (`--out x.png --plot x.png`)."""
    seen: dict[Path, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        real = Path(os.path.realpath(path))
        if real in seen:
            raise UserError(f"{option} and {seen[real]} would both write {path}; give them different names")
        seen[real] = option


_WEIGHT_WORDS = ("random", "pretrained")   # --weights values that name no file


def check_inputs_kept(inputs: dict, outputs: dict) -> None:
    """Refuse an output that would replace an input file or write inside an input folder (`--weights ck.pth
    --out ck.pth`, `--image photo.png --out photo`), compared by real path and by inode. `inputs` maps an
    option to a path, a list of paths or None (`random` / `pretrained` weights name no file); `outputs`
    maps a description to the path that will really be written (every suffix)."""
    outs = {option: Path(os.path.realpath(path)) for option, path in outputs.items() if path is not None}
    for option, values in inputs.items():
        for value in values if isinstance(values, (list, tuple)) else [values]:
            if value is None or str(value) in _WEIGHT_WORDS or not Path(value).expanduser().exists():
                continue
            real = Path(os.path.realpath(Path(value).expanduser()))
            for out_option, out in outs.items():
                if out == real or (out.exists() and os.path.samefile(out, real)):
                    raise UserError(f"{out_option} {out} would replace the input {option} {value}; "
                                    "choose another output name")
                if real.is_dir() and out.is_relative_to(real):
                    raise UserError(f"{out_option} {out} would write inside the input folder {option} {value}; "
                                    "choose an output outside it")


def check_sidecar(path: str | os.PathLike, command: str) -> Path:
    """`path` as the metadata sidecar of `command`: writable, and not some other file of the same
    name (an existing file is replaced only if it is an earlier sidecar of the same command)."""
    path = check_writable(path)
    if path.exists():
        try:
            ours = json.loads(path.read_text()).get("command") == command
        except (ValueError, AttributeError, UnicodeDecodeError, OSError):
            ours = False
        if not ours:
            raise UserError(f"{path} exists and is not a metadata file of {command}; it would be replaced by the "
                            f"run's metadata: move it or choose another output name")
    return path


def _new_file_mode(path: str) -> int:
    """The mode of the file `path` replaces, else what the umask gives a new file."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (beside its target when `path` is a symlink); on
    success rename it onto that target, else delete it (`write_set` of one file)."""
    with _deferred(path) as tmp, _write_errors(tmp.target):
        yield tmp.path
        tmp.commit()


def write_set(writers: dict) -> list[Path]:
    """Write a set of outputs together or not at all: `writers` maps each path to a `write(tmp)`; every
    write goes to a temporary file beside its target, and only when all have succeeded are they moved
    onto their targets (an interrupted or failed set leaves none of its files, new or half-written)."""
    with contextlib.ExitStack() as stack:
        temps = [(Path(path), stack.enter_context(_deferred(path))) for path in writers]
        for (path, tmp), write in zip(temps, writers.values()):
            with _write_errors(path):
                write(tmp.path)
        for path, tmp in temps:
            with _write_errors(path):
                tmp.commit()
    return [path for path, _ in temps]


@contextlib.contextmanager
def _write_errors(path: Path) -> Iterator[None]:
    """An OS error while writing `path` (disk full, quota, file size limit, a name too long) is the user's to
    fix: one line, not a traceback (the caller removes the temporary files)."""
    try:
        yield
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


class _Deferred:
    def __init__(self, path: Path, tmp: Path):
        self.target, self.path = path, tmp

    def commit(self) -> None:
        os.chmod(self.path, _new_file_mode(str(self.target)))
        os.replace(self.path, self.target)
        OUTPUT_CLAIMS.written(self.target)


@contextlib.contextmanager
def _deferred(path: str | os.PathLike) -> Iterator[_Deferred]:
    """A temporary file beside `path` that is moved onto it by `commit()`, and deleted if it never was."""
    target = Path(os.path.realpath(path))
    sweep_stale_temporaries(target.parent, target.name)
    with _write_errors(target):
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(fd)
    try:
        yield _Deferred(target, Path(tmp))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` on a temporary path and move the result onto `path`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        write(tmp)
    return path


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str)
                                                         + "\n"))


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))

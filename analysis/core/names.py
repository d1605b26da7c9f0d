"""Every list of names the command line offers, defined once and imported by both the CLIs (`--help`,
`choices`) and the library modules that implement them. Torch-free, so `--help` stays instant."""
__all__ = ["COMMANDS", "HEAD_METRICS", "PAPER_METRICS", "AMP_CHOICES", "ABLATION_MODES", "CAM_METHODS",
           "ATTENTION_BACKENDS", "RUNTIMES", "PAPER_MODELS", "ROOFLINE_MODELS", "PREDICTOR_TUNING_MODELS", "PREDICTOR_HELD_OUT_MODELS",
           "PREDICTOR_HELD_OUT_MODELS_2", "PREDICTOR_HELD_OUT_MODELS_3", "PREDICTOR_HELD_OUT_MODELS_4",
           "PREDICTOR_HELD_OUT_MODELS_5", "PREDICTOR_HELD_OUT_MODELS_6", "PREDICTOR_HELD_OUT_MODELS_7", "PREDICTOR_HELD_OUT_5_BATCH", "PREDICTOR_HELD_OUT_5_RESOLUTIONS", "SUITE_TABLES", "DIGITS_NAME"]

COMMANDS = ("head_similarity", "head_ablation", "attention_maps", "gradcam", "cost", "breakdown", "roofline",
            "throughput", "train", "ablations", "make_figures")
HEAD_METRICS = ("mean_pairwise_cosine", "mean_max_cosine", "linear_cka", "attention_entropy", "mean_attention_distance")
PAPER_METRICS = ("mean_pairwise_cosine", "mean_max_cosine")  # SHViT Fig. 3/4, EfficientViT Fig. 4
AMP_CHOICES = ("none", "fp16", "bf16")
ABLATION_MODES = ("remove1", "leave1")
CAM_METHODS = ("gradcam", "gradcam++", "rollout")
ATTENTION_BACKENDS = ("auto", "math", "flash", "efficient", "cudnn")
RUNTIMES = ("cpu", "cuda", "onnx")
PAPER_MODELS = ("deit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "efficientvit_m4", "shvit_s4")
ROOFLINE_MODELS = PAPER_MODELS + ("shvitlab_fig2_a", "shvitlab_fig2_b")
# The calibrated latency predictor (`analysis.cost.predictor`, issue 30). Design decisions may look at the tuning
# models; the held-out models (24 models from 20 timm model modules, none of them a tuning model's module) were
# declared in this commit before any of them was timed or predicted, and are only ever scored: batch 16, 1 CPU
# thread, pretrained-config resolution, BN folded, random weights.
PREDICTOR_TUNING_MODELS = ROOFLINE_MODELS + ("resnet18", "mobilenetv3_small_100", "mobilenetv3_large_100",
                                             "convnext_atto", "vit_tiny_patch16_224", "efficientvit_m0", "shvit_s1")
PREDICTOR_HELD_OUT_MODELS = (
    "regnetx_002", "regnety_004",                               # regnet
    "efficientnet_b0", "mobilenetv2_100", "mnasnet_100",        # efficientnet
    "ghostnet_100", "rexnet_100",                               # ghostnet, rexnet
    "levit_128s", "levit_192", "pit_ti_224",                    # levit, pit
    "mobilevit_xxs", "mobileone_s0",                            # mobilevit, byobnet
    "efficientformer_l1", "fastvit_t8", "tiny_vit_5m_224",      # efficientformer, fastvit, tiny_vit
    "edgenext_xx_small", "repvit_m1", "crossvit_tiny_240",      # edgenext, repvit, crossvit
    "coat_lite_tiny", "poolformer_s12", "pvt_v2_b0",            # coat, metaformer, pvt_v2
    "hgnetv2_b0", "xcit_nano_12_p16_224", "efficientvit_b0",    # hgnet, xcit, efficientvit_mit
)
# A second held-out set, for the predictor with malloc pinned (`cost.allocator`), which came after the first set was
# scored: 24 models from 23 timm model modules, none of them a tuning or first held-out model's module, declared
# in a commit before any of them was predicted or timed (models of at most ~3 GMACs the cost counter can count).
PREDICTOR_HELD_OUT_MODELS_2 = (
    "fasternet_t0", "fasternet_t1", "starnet_s1",               # fasternet, starnet
    "inception_next_atto", "mambaout_femto", "swiftformer_xs",  # inception_next, mambaout, swiftformer
    "convit_tiny", "visformer_tiny", "gmlp_ti16_224",           # convit, visformer, mlp_mixer
    "gcvit_xxtiny", "coatnet_nano_rw_224", "dla46_c",           # gcvit, maxxvit, dla
    "ese_vovnet19b_dw", "hrnet_w18_small", "densenet121",       # vovnet, hrnet, densenet
    "nf_regnet_b0", "cs3darknet_s", "twins_svt_small",          # nfnet, cspnet, twins
    "efficientformerv2_s0", "cait_xxs24_224", "repghostnet_100",  # efficientformer_v2, cait, repghost
    "dpn48b", "hardcorenas_a", "csatv2",                        # dpn, hardcorenas, csatv2
)
# A third held-out set, for the predictor that prices fresh pages per byte (`CalibratedMachine.fault_s_per_byte`),
# which came after set 2 was scored and looked at: 20 models from 18 timm model modules, none of them a module of
# the tuning models or of either earlier set, declared in a commit before any of them was predicted or timed.
PREDICTOR_HELD_OUT_MODELS_3 = (
    "vit_tiny_r_s16_p8_224", "skresnet18", "resnest14d",              # vision_transformer_hybrid, sknet, resnest
    "legacy_seresnet18", "selecsls42b", "resnetv2_18",               # senet, selecsls, resnetv2
    "eca_halonext26ts", "lambda_resnet26t", "botnet26t_256",         # byoanet
    "eva02_tiny_patch14_224", "davit_tiny", "focalnet_tiny_srf",     # eva, davit, focalnet
    "mvitv2_tiny", "hiera_tiny_224", "rdnet_tiny",                   # mvitv2, hiera, rdnet
    "inception_v3", "res2net50_48w_2s", "nest_tiny",                 # inception_v3, res2net, nest
    "swinv2_cr_tiny_ns_224", "tnt_s_patch16_224",                    # swin_transformer_v2_cr, tnt
)
# A fourth held-out set, for the predictor whose rates no longer take the `fresh` flag (fresh pages priced per byte
# alone, `CalibratedMachine.fresh_offset`), which came after set 3 was scored and looked at: 21 models from 15 timm
# model modules, none of them a module of the tuning models or of any earlier set (the light families being used
# up, it reaches 9 GMACs), declared in a commit before any of them was predicted or timed.
PREDICTOR_HELD_OUT_MODELS_4 = (
    "cpubone_b0_bfrobust", "cpubone_b1_dwnorm", "cspnext_tiny",       # cpubone, cspnext
    "cspnext_s", "efficientvim_m1", "efficientvim_m2",               # cspnext, efficientvim
    "iformer_t", "iformer_s", "lcnetv2_small", "lcnetv2_base",       # iformer, lcnetv2
    "lowformer_b0", "lowformer_b1", "nextvit_small",                 # lowformer, nextvit
    "swinv2_tiny_window8_256", "tresnet_m",                          # swin_transformer_v2, tresnet
    "vit_relpos_small_patch16_224", "vitamin_small_224",             # vision_transformer_relpos, vitamin
    "volo_d1_224", "legacy_xception", "hieradet_small", "vgg11",     # volo, xception, hieradet_sam2, vgg
)
# A fifth held-out set, for the predictor that times transposed convolutions (a bytes-moving kernel plus its flops
# per byte), which came after set 4 was scored and looked at: 21 models from the 13 timm model modules that are in
# none of the tuning models or earlier sets, declared in a commit before any of them was timed or its prediction
# compared with anything. The light families being used up, it takes every distinct architecture of those modules
# of at most 35 GMACs per image at its pretrained resolution, and the vision-language towers (pretrained at 384-768
# px) at 224 px; one model per architecture (the naflexvit and qwen3 variants differ in their heads). At 6-34
# GMACs per image (357 in all, vs 61 for set 4), it is timed at batch 8, not 16, so that its run takes about
# half an hour; everything else is as in sets 1-4.
PREDICTOR_HELD_OUT_MODELS_5 = (
    "convmixer_1024_20_ks9_p14", "convmixer_768_32",                 # convmixer
    "xception41", "xception41p", "xception65", "xception65p",        # xception_aligned
    "xception71", "sequencer2d_s", "sequencer2d_m", "sequencer2d_l",  # xception_aligned, sequencer
    "inception_v4", "inception_resnet_v2", "nasnetalarge",           # inception_v4, inception_resnet_v2, nasnet
    "pnasnet5large", "beit_base_patch16_224", "beitv2_base_patch16_224",  # pnasnet, beit
    "samvit_base_patch16_224", "naflexvit_base_patch16_gap",         # vision_transformer_sam, naflexvit
    "qwen3_vit_88m", "gemma4_vit_167m", "mobilenetv5_300m",          # qwen3_vit, gemma4_vit, mobilenetv5
)
# A sixth held-out set, for the predictor whose calibration takes no median of 2 and times a slowed microbenchmark
# again (`calibration.slow_outliers`), declared after set 5 was scored and the tuning models were looked at op by op
# (`cost.op_context`), in a commit before any of its models was predicted or timed. No timm module being left
# unused, it holds 24 models no set ever predicted or timed, one from each of 24 modules of sets 1-4 (none a module
# of the tuning models, none a module of a model an earlier set missed by more than 25%), at most 2 GMACs per image,
# drawn as `benchmarks/draw_held_out.py --set 6` prints: unseen models of families seen before, a weaker test than sets
# 1-5. Timed, and calibrated, with subnormal floats flushed to zero (`PredictorSet.flush_denormal`): random weights
# can make subnormal attention probabilities, which a shape cannot predict (Swin-T's attention ran 4.6x slower on
# the Intel host); everything else as in sets 1-4.
PREDICTOR_HELD_OUT_MODELS_6 = (
    "edgenext_x_small", "pit_xs_distilled_224", "xcit_nano_12_p16_384",   # edgenext, pit, xcit
    "cpubone_nano", "mixer_s32_224", "poolformerv2_s12",                 # cpubone, mlp_mixer, metaformer
    "cspnext_m", "lcnetv2_large", "repvit_m3",                           # cspnext, lcnetv2, repvit
    "starnet_s150", "nf_regnet_b2", "hgnetv2_b3",                        # starnet, nfnet, hgnet
    "efficientvit_b1", "efficientvim_m4", "hardcorenas_d",               # efficientvit_mit, efficientvim, hardcorenas
    "cs3darknet_focus_m", "mobilevitv2_075", "iformer_m",                # cspnet, mobilevit, iformer
    "efficientformerv2_s1", "fastvit_sa12", "ghostnetv3_130",            # efficientformer_v2, fastvit, ghostnet
    "levit_128", "repghostnet_150", "mobileone_s1",                      # levit, repghost, byobnet
)
# A seventh held-out set, for the predictor whose calibration also fits a context factor on small random networks
# (`cost.context_networks`: kernels inside a network against alone) and no longer times 256 MiB bytes-moving
# kernels, declared after set 6 was scored and the change was looked at on the tuning models only, in a commit before
# any of its models was predicted or timed. Drawn as `benchmarks/draw_held_out.py --set 7` prints, seed 7: models no
# set ever predicted or timed, at most 2 GMACs per image, none from a module of the tuning models or of a model any
# earlier set (1-6) missed by more than 25%; first from the modules of sets 1-4 that set 6 did not draw from (4 of
# them still hold such a model), then from set 6's modules, then a second model of each in the same order: 24 models
# of 19 modules. Unseen models of families seen before, as set 6; everything else as set 6 (batch 16, pretrained-
# config resolution, BN folded, random weights, 1 thread, subnormals flushed to zero).
PREDICTOR_HELD_OUT_MODELS_7 = (
    "fasternet_t2", "coat_lite_mini", "mambaout_kobe",                  # fasternet, coat, mambaout
    "crossvit_9_dagger_240", "pit_xs_224", "levit_conv_192",            # crossvit, pit, levit
    "cs3darknet_focus_s", "edgenext_small_rw", "starnet_s4",            # cspnet, edgenext, starnet
    "efficientvit_b2", "xcit_tiny_12_p16_224", "mobileone_s2",          # efficientvit_mit, xcit, byobnet
    "hgnetv2_b1", "mobilevitv2_100", "fastvit_t12",                     # hgnet, mobilevit, fastvit
    "cpubone_t0", "efficientvim_m3_dist", "efficientformerv2_s2",       # cpubone, efficientvim, efficientformer_v2
    "repvit_m2", "crossvit_9_240", "levit_256",                         # repvit, crossvit, levit
    "edgenext_small", "starnet_s2", "repvgg_a0",                        # edgenext, starnet, byobnet
)
PREDICTOR_HELD_OUT_5_BATCH = 8
PREDICTOR_HELD_OUT_5_RESOLUTIONS = {"naflexvit_base_patch16_gap": 224, "qwen3_vit_88m": 224, "gemma4_vit_167m": 224,
                                    "mobilenetv5_300m": 224}
SUITE_TABLES = ("gradcam", "heads", "macro", "single_head")  # the micro suite's tables (`ablations --table`)
DIGITS_NAME = "cluttered-digits"


if __name__ == "__main__":  # a library module, not a command
    from .errors import not_a_command
    raise SystemExit(not_a_command(__spec__.name))

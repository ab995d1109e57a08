"""Writes nnU-Net v2 trained-model folders with random weights, laid out as nnunetv2 writes them
(plans.json, dataset.json, fold_N/checkpoint_final.pth with the trainer's checkpoint keys)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: A small network: 4 stages, 4 → 32 features (plumbing tests).
TINY = {
    "features": [4, 8, 16, 32],
    "patch": [16, 32, 32],
    "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
}
#: nnU-Net's 3d_fullres network for a CT at 1.5 mm: 6 stages, 32 → 320 features, 128³ patch.
FULLRES = {
    "features": [32, 64, 128, 256, 320, 320],
    "patch": [128, 128, 128],
    "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
}


def write_nnunet_folder(
    root: Path,
    labels: list[str],
    *,
    size: dict = TINY,
    spacing_zyx=(2.0, 1.5, 1.5),
    folds=(0,),
    seed: int = 0,
    regions: bool = False,
    old_plans_format: bool = False,
    logit_scale: float = 10.0,
    normalization: str = "CTNormalization",
    use_mask_for_norm: bool = False,
    channel_name: str = "CT",
) -> Path:
    """Create ``root/Dataset999_Test/nnUNetTrainer__nnUNetPlans__3d_fullres`` and return it."""
    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    folder = Path(root) / "Dataset999_Test" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    folder.mkdir(parents=True, exist_ok=True)
    stages = len(size["features"])
    arch_kwargs = {
        "n_stages": stages,
        "features_per_stage": size["features"],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * stages,
        "strides": size["strides"],
        "n_conv_per_stage": [2] * stages,
        "n_conv_per_stage_decoder": [2] * (stages - 1),
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
    config = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": size["patch"],
        "median_image_size_in_voxels": [150, 256, 256],
        "spacing": list(spacing_zyx),
        "normalization_schemes": [normalization],
        "use_mask_for_norm": [use_mask_for_norm],
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {
            "is_seg": False,
            "order": 1,
            "order_z": 0,
            "force_separate_z": None,
        },
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": arch_kwargs,
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
        "batch_dice": True,
    }
    if old_plans_format:
        del config["architecture"]
        config.update(
            UNet_class_name="PlainConvUNet",
            UNet_base_num_features=size["features"][0],
            unet_max_num_features=size["features"][-1],
            n_conv_per_stage_encoder=[2] * stages,
            n_conv_per_stage_decoder=[2] * (stages - 1),
            num_pool_per_axis=[stages - 1] * 3,
            pool_op_kernel_sizes=size["strides"],
            conv_kernel_sizes=[[3, 3, 3]] * stages,
        )
    plans = {
        "dataset_name": "Dataset999_Test",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": list(spacing_zyx),
        "original_median_shape_after_transp": [150, 256, 256],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": config},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {
                "max": 3071.0,
                "mean": 40.0,
                "median": 45.0,
                "min": -1024.0,
                "percentile_00_5": -980.0,
                "percentile_99_5": 1400.0,
                "std": 300.0,
            }
        },
    }
    if regions:
        label_map = {"background": 0}
        for i, name in enumerate(labels, start=1):
            label_map[name] = list(range(i, len(labels) + 1))
        outputs = len(labels)
        dataset_extra = {"regions_class_order": list(range(1, len(labels) + 1))}
    else:
        label_map = {"background": 0, **{name: i for i, name in enumerate(labels, start=1)}}
        outputs = len(labels) + 1
        dataset_extra = {}
    dataset = {
        "channel_names": {"0": channel_name},
        "labels": label_map,
        "numTraining": 10,
        "file_ending": ".nii.gz",
        **dataset_extra,
    }
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    for fold in folds:
        torch.manual_seed(seed + fold)
        network = PlainConvUNet(
            1,
            stages,
            size["features"],
            torch.nn.Conv3d,
            3,
            size["strides"],
            [2] * stages,
            outputs,
            [2] * (stages - 1),
            True,
            torch.nn.InstanceNorm3d,
            {"eps": 1e-5, "affine": True},
            None,
            None,
            torch.nn.LeakyReLU,
            {"inplace": True},
            deep_supervision=False,
        )
        with torch.no_grad():  # random but not degenerate: varied norm scales, decisive logits
            for name, parameter in network.named_parameters():
                if parameter.ndim == 1:
                    parameter.normal_(1.0 if name.endswith("weight") else 0.0, 0.3)
            for parameter in network.decoder.seg_layers.parameters():
                parameter.mul_(logit_scale)
        checkpoint = {
            "network_weights": network.state_dict(),
            "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.99}]},
            "grad_scaler_state": None,
            "logging": {"mean_fg_dice": [np.float64(0.5)], "ema_fg_dice": [np.float64(0.5)]},
            "_best_ema": np.float64(0.5),
            "current_epoch": 1000,
            "init_args": {
                "plans": plans,
                "configuration": "3d_fullres",
                "fold": fold,
                "dataset_json": dataset,
                "device": torch.device("cpu"),
            },
            "trainer_name": "nnUNetTrainer",
            "inference_allowed_mirroring_axes": (0, 1, 2),
        }
        (folder / f"fold_{fold}").mkdir(exist_ok=True)
        torch.save(checkpoint, folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


def nnunet_predictor(folder: Path, folds=(0,)):
    """nnunetv2's own predictor on the CPU with the settings the engine is compared at: tile step
    0.5, Gaussian blending, no mirroring."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(
        tile_step_size=0.5,
        use_gaussian=True,
        use_mirroring=False,
        device=torch.device("cpu"),
        verbose=False,
        allow_tqdm=False,
    )
    predictor.initialize_from_trained_model_folder(str(folder), use_folds=tuple(folds))
    return predictor


def label_map(structures, outputs) -> np.ndarray:
    """A structure set from an nnU-Net model as nnU-Net's label map (values = channels)."""
    channel = {o.name: o.channel for o in outputs}
    labels = np.zeros(structures.grid.shape, np.uint8)
    for structure in structures:
        labels[structure.mask.full()] = channel[structure.name]
    return labels

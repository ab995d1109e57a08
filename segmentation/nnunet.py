"""nnU-Net v2 model folders run through Delineo's engine (no nnunetv2 needed at run time).

A folder ``DatasetXXX_Name/Trainer__Plans__configuration/`` holds ``plans.json``,
``dataset.json`` and ``fold_N/checkpoint_final.pth``: how TotalSegmentator and most published
auto-contouring models are distributed. Delineo builds the network from the plans with
dynamic-network-architectures (only known classes and torch layers, never arbitrary code),
reads the checkpoints with ``weights_only=True``, and reproduces nnU-Net's inference: crop to the
non-zero region, normalisation scheme, cubic resampling (with nnU-Net's separate-z rule), tiles
with Gaussian blending (step 0.5), fold ensembling, logits back with linear resampling, argmax.
dataset.json labels become structures (TG-263 names where a label is a known organ); region-based
models (overlapping regions, sigmoid) give overlapping structures.

An optional ``delineo.json`` beside plans.json may set ``name``, ``orientation`` (e.g. "RAS" for
models trained on canonical NIfTI like TotalSegmentator's), ``crop`` ("body"/"none") and
``modality``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from planning.errors import DelineoError
from planning.tg263 import standard_name, style_for
from segmentation.engine.manifest import OutputSpec
from segmentation.engine.model import NetworkModel, WeightsError, check_shapes, load_into
from segmentation.engine.pipeline import Recipe
from segmentation.engine.resample import coordinate_map, zoom_map

#: nnU-Net's anisotropy threshold for resampling the low-resolution axis separately.
ANISOTROPY_THRESHOLD = 3.0

_NETWORKS = {
    "PlainConvUNet": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "ResidualEncoderUNet": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
}
_LAYERS = {
    "Conv2d",
    "Conv3d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "BatchNorm2d",
    "BatchNorm3d",
    "LeakyReLU",
    "ReLU",
    "GELU",
    "PReLU",
    "Dropout",
    "Dropout2d",
    "Dropout3d",
}


class NnUNetError(DelineoError):
    """An nnU-Net folder that Delineo cannot run: missing files, unsupported plans."""


class NnUNetModel(NetworkModel):
    """A `NetworkModel` of an nnU-Net folder; `notes`: what reading the folder found that the
    user should know (folds left out), repeated in every run's warnings."""

    def __init__(self, *args, notes: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.notes = tuple(notes)

    def predict(self, volume, **kwargs):
        """`NetworkModel.predict`, with the folder's `notes` put first in the run's warnings."""
        before = self.last_run
        try:
            return super().predict(volume, **kwargs)
        finally:
            if self.notes and self.last_run is not None and self.last_run is not before:
                self.last_run.warnings[:0] = self.notes


def is_nnunet_folder(path: str | Path) -> bool:
    """Whether `path` is an nnU-Net v2 result folder: plans.json, dataset.json and a fold folder or more."""
    path = Path(path)
    return (path / "plans.json").is_file() and (path / "dataset.json").is_file() and bool(_fold_folders(path))


def _fold_folders(path: Path) -> list[Path]:
    return sorted(p for p in path.glob("fold_*") if p.is_dir())


def structure_name(label: str) -> str:
    """A dataset.json label as a structure name: TG-263 where it is one (kidney_left → Kidney_L)."""
    return standard_name(label) or label


def read_nnunet_folder(
    path: str | Path,
    *,
    folds: list[int | str] | None = None,
    checkpoint: str = "checkpoint_final.pth",
    mirroring: bool = False,
    crop: str | None = None,
    name: str | None = None,
) -> NetworkModel:
    """A `NetworkModel` for an nnU-Net v2 trained-model folder (checkpoints loaded on first use).

    Args:
        folds: folds to ensemble, numbers or "all" (default: every numbered ``fold_N`` holding
            `checkpoint`, as nnU-Net's predictor chooses them, ``fold_all`` left out; the numbered
            fold folders without it are named in a warning; ``fold_all`` only when no numbered
            fold holds it).
        mirroring: test-time mirroring along the axes the trainer allowed (nnU-Net's default;
            2–8× slower).
        crop: "body" (CT default: nothing outside the patient is segmented, fewer tiles) or
            "none" (the whole image, exactly as nnU-Net).
    """
    path = Path(path)
    if not (path / "plans.json").is_file() or not (path / "dataset.json").is_file():
        raise NnUNetError(f"{path}: not an nnU-Net model folder (plans.json and dataset.json needed)")
    plans = _read_json(path / "plans.json")
    dataset = read_dataset(path)
    sidecar = _read_json(path / "delineo.json") if (path / "delineo.json").is_file() else {}
    checkpoints, unfinished = _checkpoints(path, folds, checkpoint)
    configuration_name = _configuration_name(path, checkpoints[0])
    config = _configuration(plans, configuration_name, path)
    outputs, activation = dataset_outputs(dataset, path)
    channels = channel_names(dataset) or {"0": ""}
    if len(channels) != 1:
        raise NnUNetError(
            f"{path}: models with {len(channels)} input channels are not supported (one image in)"
        )
    if "previous_stage" in config or configuration_name.startswith("3d_cascade"):
        raise NnUNetError(f"{path}: cascade configurations ({configuration_name}) need a previous stage")
    scheme = config.get("normalization_schemes", ["ZScoreNormalization"])[0]
    modality = input_modality(path, dataset, scheme)
    architecture = _architecture(config, path)
    strides = np.prod(np.array(architecture["arch_kwargs"]["strides"]), axis=0)
    intensity = plans.get("foreground_intensity_properties_per_channel", {}).get("0", {})
    transpose = tuple(plans.get("transpose_forward", [0, 1, 2]))
    mirror_axes: tuple[int, ...] = ()
    if mirroring:  # the trainer records which axes it augmented with
        allowed = read_checkpoint(checkpoints[0]).get("inference_allowed_mirroring_axes") or (0, 1, 2)
        mirror_axes = tuple(int(a) for a in allowed)
    recipe = Recipe(
        outputs=outputs,
        activation=activation,
        threshold=0.5,
        patch_zyx=tuple(int(p) for p in config["patch_size"]),
        overlap=0.5,
        mirror_axes=mirror_axes,
        size_divisor=tuple(int(s) for s in strides),
        orientation=sidecar.get("orientation") or _default_orientation(path),
        transpose=transpose,
        crop=crop or sidecar.get("crop", "body"),
        modality=modality,
        prepare=_preparer(scheme, intensity, config, path),
        back_maps=_back_maps(config),
        model_spacing=lambda spacing: tuple(float(s) for s in config["spacing"]),
        activation_first=False,
        pad_value="zero",
        nonzero_crop=True,
    )

    def skeleton():
        """The network on the meta device: shapes only, plans asking for a huge one allocate nothing."""
        import torch

        with torch.device("meta"):
            return build_network(architecture, 1, recipe.channels, path)

    def skeletons() -> list:
        from segmentation.engine.head import split_unet

        return [split_unet(skeleton())] * len(checkpoints)  # as build() gives them, one per fold

    def build() -> list:
        from segmentation.engine.head import split_unet

        networks = []
        for file in checkpoints:
            weights = read_checkpoint(file)["network_weights"]
            check_shapes(skeleton(), weights, file, f"plans.json ({configuration_name})")
            network = build_network(architecture, 1, recipe.channels, path)
            # split: the engine may blend features and apply the last layer once (head.py)
            networks.append(split_unet(load_into(network, weights, str(file))))
        return networks

    name = name or default_name(path)
    notes = ()
    if unfinished:
        used = ", ".join(f.parent.name for f in checkpoints)
        notes = (
            f"{name}: {', '.join(unfinished)} of {path} {'has' if len(unfinished) == 1 else 'have'} no "
            f"{checkpoint} (training not finished?) and {'is' if len(unfinished) == 1 else 'are'} left "
            f"out: the contours come from {used} only",
        )
    model = NnUNetModel(
        name,
        recipe,
        build,
        version=f"nnU-Net v2, {len(checkpoints)} fold(s)",
        description=str(dataset.get("name") or dataset.get("description") or path.parent.name),
        source=path,
        kind="nnunet",
        notes=notes,
        skeletons=skeletons,
    )
    return model


def default_name(path: Path) -> str:
    """A model name for an nnU-Net folder: delineo.json's, else "DatasetXXX_Name/configuration"."""
    path = Path(path)
    if (path / "delineo.json").is_file() and _read_json(path / "delineo.json").get("name"):
        return str(_read_json(path / "delineo.json")["name"])
    parts = path.name.split("__")
    configuration = parts[2] if len(parts) == 3 else path.name
    return f"{path.parent.name}/{configuration}" if path.parent.name.startswith("Dataset") else path.name


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise NnUNetError(f"{path}: cannot be read ({error})") from error
    if not isinstance(data, dict):
        raise NnUNetError(f"{path}: not a JSON object (it holds a {type(data).__name__})")
    return data


def read_dataset(path: Path) -> dict:
    """The dataset.json of nnU-Net folder `path`, checked: an object, with `labels` an object
    (label name → value or region) and the channels (`channel_names` or `modality`) one too."""
    file = Path(path) / "dataset.json"
    dataset = _read_json(file)
    if not isinstance(dataset.get("labels"), dict) or not dataset["labels"]:
        labels = dataset.get("labels")
        found = "nothing" if labels is None else "an empty one" if labels == {} else type(labels).__name__
        raise NnUNetError(f"{file}: 'labels' must map label names to values (found {found})")
    for key in ("channel_names", "modality"):
        if dataset.get(key) is not None and not isinstance(dataset[key], dict):
            raise NnUNetError(
                f"{file}: {key!r} must map channel numbers to names (found {type(dataset[key]).__name__})"
            )
    return dataset


def channel_names(dataset: dict) -> dict:
    """A checked dataset.json's input channels (number → name), {} when it names none."""
    return dataset.get("channel_names") or dataset.get("modality") or {}


def _checkpoints(path: Path, folds, checkpoint: str) -> tuple[list[Path], list[str]]:
    """The checkpoints to ensemble, and the fold folders left out for lacking `checkpoint`.

    Without `folds`, every numbered fold folder holding `checkpoint`, as nnunetv2's predictor
    chooses them (``nnUNetPredictor.auto_detect_available_folds`` leaves ``fold_all`` out and
    keeps the ``fold_N`` holding it, saying nothing of the others); the numbered ones without it
    are returned, for a warning: a fold whose training did not finish changes the ensemble
    (contours from fewer folds differ). Where no numbered fold holds it, ``fold_all`` does
    (nnunetv2 would find no fold; its users pass ``-f all``). Folds asked for must all hold it."""
    unfinished: list[str] = []
    if folds is None:
        files = []
        for fold in _fold_folders(path):
            if not fold.name.removeprefix("fold_").isdigit():  # fold_all, or not a fold
                continue
            if (fold / checkpoint).is_file():
                files.append(fold / checkpoint)
            else:
                unfinished.append(fold.name)
        if not files and (path / "fold_all" / checkpoint).is_file():
            files = [path / "fold_all" / checkpoint]
    else:
        files = [path / f"fold_{f}" / checkpoint for f in folds]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise NnUNetError(f"{path}: missing checkpoint(s) {', '.join(missing)}")
    if not files:
        raise NnUNetError(f"{path}: no fold_*/{checkpoint} found (training not finished?)")
    return files, unfinished


def _configuration_name(path: Path, first_checkpoint: Path) -> str:
    parts = path.name.split("__")
    if len(parts) == 3:
        return parts[2]
    return str(read_checkpoint(first_checkpoint).get("init_args", {}).get("configuration", "3d_fullres"))


def _configuration(plans: dict, name: str, path: Path) -> dict:
    configurations = plans.get("configurations", {})
    if name not in configurations:
        raise NnUNetError(f"{path}: plans.json has no configuration {name!r} ({', '.join(configurations)})")
    config = dict(configurations[name])
    seen = {name}
    while "inherits_from" in config:
        parent = config.pop("inherits_from")
        if parent in seen or parent not in configurations:
            raise NnUNetError(f"{path}: configuration {name!r} inherits from unknown {parent!r}")
        seen.add(parent)
        config = {**configurations[parent], **config}
    if len(config.get("patch_size", [])) != 3:
        raise NnUNetError(f"{path}: only 3D configurations are supported, {name!r} is not one")
    return config


def dataset_outputs(dataset: dict, path: Path) -> tuple[tuple[OutputSpec, ...], str]:
    """The structures a dataset.json's labels give (one per network channel used) and the
    activation: "sigmoid" for region-based models, "softmax" for label-based ones."""
    labels = dataset.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise NnUNetError(f"{path}: dataset.json has no 'labels'")
    # as nnU-Net's LabelManager: region-based when a label is a list of more than one value; a
    # one-value list ([3]) is that label
    regions = any(isinstance(v, (list, tuple)) and len(v) > 1 for v in labels.values())
    outputs = []
    if regions:
        # as nnU-Net's LabelManager: one channel per region, in order, except the ignore label
        # and background regions (0 or only zeros)
        channel = 0
        for label, value in labels.items():
            if label in ("background", "ignore") or _is_background(value):
                continue
            outputs.append(_output(channel, label))
            channel += 1
        return tuple(outputs), "sigmoid"
    try:
        values = {
            label: int(value[0] if isinstance(value, (list, tuple)) and len(value) == 1 else value)
            for label, value in labels.items()
        }
    except (TypeError, ValueError) as error:
        raise NnUNetError(f"{path}: dataset.json labels must be whole numbers ({error})") from error
    for label, value in sorted(values.items(), key=lambda item: item[1]):
        if value == 0 or label == "ignore":
            continue
        outputs.append(_output(value, label))
    if [o.channel for o in outputs] != list(range(1, len(outputs) + 1)):
        raise NnUNetError(f"{path}: dataset.json labels must be 0, 1, 2, … without gaps")
    return tuple(outputs), "softmax"


def _is_background(value) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    try:
        return all(int(v) == 0 for v in values)
    except (TypeError, ValueError):
        return False


def _output(channel: int, label: str) -> OutputSpec:
    name = structure_name(label)
    color, roi_type = style_for(name)
    return OutputSpec(channel, name, roi_type, color)


def _default_orientation(path: Path) -> str | None:
    """TotalSegmentator makes inputs canonical (RAS) before nnU-Net; other models see arrays as
    SimpleITK reads the file, which for a DICOM series is how Delineo loads it (no change)."""
    return "RAS" if "totalsegmentator" in str(path).lower() else None


def _architecture(config: dict, path: Path) -> dict:
    """The plans' architecture section (converting nnU-Net's older plans format)."""
    if "architecture" in config:
        return config["architecture"]
    try:
        class_name = config["UNet_class_name"]
        stages = len(config["n_conv_per_stage_encoder"])
        blocks = "n_conv_per_stage" if class_name == "PlainConvUNet" else "n_blocks_per_stage"
        return {
            "network_class_name": _NETWORKS.get(class_name, class_name),
            "arch_kwargs": {
                "n_stages": stages,
                "features_per_stage": [
                    min(config["UNet_base_num_features"] * 2**i, config["unet_max_num_features"])
                    for i in range(stages)
                ],
                "conv_op": "torch.nn.modules.conv.Conv3d",
                "kernel_sizes": config["conv_kernel_sizes"],
                "strides": config["pool_op_kernel_sizes"],
                blocks: config["n_conv_per_stage_encoder"],
                "n_conv_per_stage_decoder": config["n_conv_per_stage_decoder"],
                "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                "dropout_op": None,
                "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        }
    except KeyError as error:
        raise NnUNetError(f"{path}: plans.json lacks the network description ({error})") from error


def build_network(architecture: dict, in_channels: int, out_channels: int, path: Path):
    """The network the plans describe, from an allow-list of classes and torch layers."""
    import importlib

    import torch

    class_path = architecture["network_class_name"]
    short = class_path.rsplit(".", 1)[-1]
    if short not in _NETWORKS:
        raise NnUNetError(f"{path}: network class {class_path} is not supported ({', '.join(_NETWORKS)})")
    module_name, class_name = _NETWORKS[short].rsplit(".", 1)
    network_class = getattr(importlib.import_module(module_name), class_name)
    kwargs = dict(architecture["arch_kwargs"])
    for key in architecture.get("_kw_requires_import", []):
        if kwargs.get(key) is None:
            continue
        layer = str(kwargs[key]).rsplit(".", 1)[-1]
        if layer not in _LAYERS or not hasattr(torch.nn, layer):
            raise NnUNetError(f"{path}: layer {kwargs[key]} is not supported")
        kwargs[key] = getattr(torch.nn, layer)
    kwargs["deep_supervision"] = False
    try:
        return network_class(input_channels=in_channels, num_classes=out_channels, **kwargs)
    except TypeError as error:
        raise NnUNetError(f"{path}: cannot build {short} from the plans ({error})") from error


def read_checkpoint(path: Path) -> dict:
    """An nnU-Net checkpoint read with ``weights_only=True`` (numpy scalars allowed, no code)."""
    import torch

    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 / numpy 1.26
    allowed = [np.dtype, np.dtypes.Float64DType, np.dtypes.Float32DType, np.dtypes.Int64DType]
    allowed.append(core.multiarray.scalar)
    try:
        with torch.serialization.safe_globals(allowed):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"{path}: cannot be read safely as an nnU-Net checkpoint ({error})") from error
    if not isinstance(state, dict) or "network_weights" not in state:
        raise WeightsError(f"{path}: not an nnU-Net checkpoint (no 'network_weights')")
    return state


# -- nnU-Net's preprocessing and export, as separable maps --------------------------------------


def _separate_axis(spacing_from, spacing_to, force) -> int | None:
    """nnU-Net's choice of an axis to resample on its own (None: resample in 3D)."""

    def lowres(spacing):
        spacing = np.asarray(spacing, float)
        axes = np.flatnonzero(spacing.max() / spacing == 1)
        return int(axes[0]) if len(axes) == 1 else None

    def anisotropic(spacing):
        return max(spacing) / min(spacing) > ANISOTROPY_THRESHOLD

    if force is not None:
        return lowres(spacing_from) if force else None
    if anisotropic(spacing_from):
        return lowres(spacing_from)
    if anisotropic(spacing_to):
        return lowres(spacing_to)
    return None


def _maps(shape_from, shape_to, spacing_from, spacing_to, kwargs) -> tuple[list, int | None]:
    order, order_z = int(kwargs.get("order", 3)), int(kwargs.get("order_z", 0))
    axis = _separate_axis(spacing_from, spacing_to, kwargs.get("force_separate_z"))
    maps = []
    for k in range(3):
        if k == axis:
            maps.append(coordinate_map(shape_from[k], shape_to[k], order_z))
        else:
            maps.append(zoom_map(shape_from[k], shape_to[k], order))
    return maps, axis


#: Beginnings of nnU-Net channel names that are MR sequences ("T1", "T2w", "FLAIR", "ADC", ...).
_MR_CHANNELS = ("T1", "T2", "FLAIR", "MR", "ADC", "DWI", "DIFF", "PD", "SWI")


def input_modality(path: Path, dataset: dict, scheme: str | None = None) -> str:
    """The modality a run checks the image against ("CT", "MR", "PT"; "" when none is known):
    delineo.json's ``"modality"``, else what the input channel's name and normalisation `scheme`
    say. Without `scheme` (listing models, before a configuration is chosen), CT when any of the
    plans' configurations normalises as CT."""
    path = Path(path)
    sidecar = _read_json(path / "delineo.json") if (path / "delineo.json").is_file() else {}
    channels = channel_names(dataset)
    if sidecar.get("modality") or len(channels) > 1:
        return str(sidecar.get("modality") or "")
    if scheme is None:
        plans = _read_json(path / "plans.json")
        schemes = {
            (config.get("normalization_schemes") or ["ZScoreNormalization"])[0]
            for config in plans.get("configurations", {}).values()
            if isinstance(config, dict)
        }
        scheme = "CTNormalization" if "CTNormalization" in schemes else "ZScoreNormalization"
    return _modality(scheme, str(next(iter(channels.values()), "")))


def _modality(scheme: str, channel_name: str) -> str:
    """The DICOM modality a model's input channel is ("CT", "MR", "PT"), "" when its name says
    none (the input is then not checked)."""
    name = channel_name.strip().upper()
    if scheme == "CTNormalization" or name == "CT":
        return "CT"
    if name in ("PT", "PET"):
        return "PT"
    if name.startswith(_MR_CHANNELS):
        return "MR"
    return ""


def _nonzero_region(image):
    """Voxels that are not zero, with the holes inside them filled (nnU-Net's non-zero mask)."""
    import torch
    from scipy import ndimage

    region = ndimage.binary_fill_holes((image != 0).cpu().numpy())
    return torch.from_numpy(region).to(image.device)


def _preparer(scheme: str, intensity: dict, config: dict, path: Path):
    import torch

    target = [float(s) for s in config["spacing"]]
    kwargs = config.get("resampling_fn_data_kwargs", {"order": 3, "order_z": 0, "force_separate_z": None})
    if config.get("resampling_fn_data", "resample_data_or_seg_to_shape") != "resample_data_or_seg_to_shape":
        raise NnUNetError(f"{path}: resampling function {config['resampling_fn_data']} is not supported")

    use_mask = bool((config.get("use_mask_for_norm") or [False])[0])

    def normalize(image):
        if scheme == "CTNormalization":
            low, high = float(intensity["percentile_00_5"]), float(intensity["percentile_99_5"])
            return (image.clamp(low, high) - float(intensity["mean"])) / max(float(intensity["std"]), 1e-8)
        if scheme == "ZScoreNormalization" and use_mask:
            # as nnU-Net: statistics inside the image's non-zero region (holes filled), the zeros
            # around it left at zero (an MR's background, a skull-stripped brain's outside)
            mask = _nonzero_region(image)
            inside = image[mask]
            if not inside.numel():
                return image
            scale = max(float(inside.std(correction=0)), 1e-8)
            return torch.where(mask, (image - inside.mean()) / scale, image)
        if scheme == "ZScoreNormalization":
            return (image - image.mean()) / max(float(image.std(correction=0)), 1e-8)
        if scheme == "NoNormalization":
            return image
        if scheme == "RescaleTo01Normalization":
            return (image - image.min()) / max(float(image.max() - image.min()), 1e-8)
        raise NnUNetError(f"{path}: normalization {scheme} is not supported")

    def prepare(image, spacing_zyx):
        image = normalize(image)
        shape = tuple(image.shape)
        new = [int(round(s / t * n)) for s, t, n in zip(spacing_zyx, target, shape, strict=True)]
        if list(shape) == new:
            return image
        maps, axis = _maps(shape, new, spacing_zyx, target, kwargs)
        other = [k for k in range(3) if k != axis]
        # skimage's resize clips to the input's range: per plane when an axis goes separately.
        if axis is None:
            low, high = image.min(), image.max()
        else:
            low = image.amin(dim=other, keepdim=True)
            high = image.amax(dim=other, keepdim=True)
        for k in other:
            image = maps[k].apply(image, k)
        image = torch.maximum(torch.minimum(image, high), low)
        if axis is not None:
            image = maps[axis].apply(image, axis)
        return image

    return prepare


def _back_maps(config: dict):
    kwargs = config.get(
        "resampling_fn_probabilities_kwargs", {"order": 1, "order_z": 0, "force_separate_z": None}
    )

    def back_maps(model_shape, original_shape, model_spacing, original_spacing):
        return _maps(model_shape, original_shape, model_spacing, original_spacing, kwargs)[0]

    return back_maps

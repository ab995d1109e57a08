"""The view state a session saved (`MainWindow.view_state`), checked before it is restored (Qt-free).

Each entry that cannot be restored as it is (a window that is not two numbers, a slice position
outside the image, a zoom that is not a number, a layout naming no view…) is left out and said
in words; the view keeps what the newly opened case starts with there.
"""

from __future__ import annotations

from planning.session_fields import is_number, shown

#: What each optional text entry is, in the warning's words.
_TEXTS = {
    "active_structure": "selected structure",
    "tool": "tool",
    "dose": "dose file",
}


def checked_view_state(plain: dict, shape_zyx, view_names, layout_names) -> tuple[dict, list[str]]:
    """The entries of `plain` that can be restored, and a warning for each left out.

    `shape_zyx` is the image's shape in voxels (z, y, x); `view_names` the slice views whose zoom
    and pan are restored; `layout_names` the views one may be maximised to."""
    kept, warnings = dict(plain), []

    def drop(key: str, what: str, expected: str, reset: str) -> None:
        warnings.append(
            f"The session's saved view is damaged: its {what} is {shown(plain[key])}, not {expected}; {reset}"
        )
        del kept[key]

    window = plain.get("window")
    if "window" in plain and not (_numbers(window, 2) and window[0] > 0):
        drop("window", "window/level", "a width > 0 and a level", "the image's own window is shown")
    cursor = plain.get("cursor_zyx")
    if "cursor_zyx" in plain and not (
        _numbers(cursor, 3) and all(0 <= c <= n - 1 for c, n in zip(cursor, shape_zyx, strict=True))
    ):
        z, y, x = (int(n) for n in shape_zyx)
        inside = f"three slice positions (z, y, x) within the image's {z} × {y} × {x} voxels"
        drop("cursor_zyx", "slice position", inside, "the views show the case's starting slices")
    views = plain.get("views", {})
    if not isinstance(views, dict):
        drop("views", "zoom and pan", "an object of views", "each view shows the whole image")
    else:
        kept["views"] = {}
        for name, view in views.items():
            if name not in view_names:
                continue
            if _view_is_sound(view):
                kept["views"][name] = view
            else:
                warnings.append(
                    f"The session's saved view is damaged: the {name} view's zoom and pan are "
                    f"{shown(view)}, not a zoom > 0 and two pan numbers; it shows the whole image"
                )
    maximised = plain.get("maximised")
    if maximised is not None and maximised not in layout_names:
        drop("maximised", "maximised view", f"one of {', '.join(layout_names)}", "all views are shown")
    for key, what in _TEXTS.items():
        if plain.get(key) is not None and not isinstance(plain[key], str):
            drop(key, what, "a name", "none is restored")
    return kept, warnings


def _numbers(value, count: int) -> bool:
    return isinstance(value, list) and len(value) == count and all(is_number(v) for v in value)


def _view_is_sound(view) -> bool:
    """A slice view's saved {"zoom": z, "pan": [x, y]} (either may be absent)."""
    if not isinstance(view, dict):
        return False
    zoom = view.get("zoom", 1.0)
    return is_number(zoom) and zoom > 0 and _numbers(view.get("pan", [0.0, 0.0]), 2)

"""`delineo models`: the segmentation models Delineo can find, and the structures each draws."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list segmentation models and their structures")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from segmentation.registry import list_models, search_roots

    entries = list_models()
    if args.json:
        rows = [
            {
                "name": e.name,
                "version": e.version,
                "kind": e.kind,
                "origin": e.origin,
                "path": str(e.path) if e.path else None,
                "modality": e.modality,
                "description": e.description,
                "structures": list(e.structures),
                "on_request": list(e.on_request),
                "card": str(e.card) if e.card else None,
            }
            for e in entries
        ]
        print(json.dumps(rows, indent=1))
        return 0
    for entry in entries:
        what = ", ".join(part for part in (entry.origin, entry.kind, entry.modality) if part)
        where = f"  [{entry.path}]" if entry.path else ""
        print(f"{entry.title}  ({what}){where}")
        if entry.description:
            print(f"    {entry.description}")
        drawn = [f"{n} (only when named)" if n in entry.on_request else n for n in entry.structures]
        print(f"    structures: {', '.join(drawn)}")
        if entry.card is not None:
            print(f"    model card: {entry.card}")
    roots = ", ".join(f"{path} ({origin})" for origin, path in search_roots()) or "none"
    searched = (
        "built-in models, $DELINEO_MODELS, ~/.delineo/models, $nnUNet_results, TotalSegmentator's folder"
    )
    print(f"searched: {searched}")
    print(f"of those, folders that exist: {roots}")
    return 0

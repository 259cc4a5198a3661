"""Stage `export`: a trained run -> ``<export-base>/<name>/<version>/`` SavedModel with the
``user_tower``, ``score`` and ``serving_default`` signatures (atomic, next version number)."""
from __future__ import annotations


def add_arguments(p):
    p.add_argument("--run", required=True, help="trained run directory")
    p.add_argument("--export-base", default="saved_models", help="export root (TF Serving --model_base_path parent)")
    p.add_argument("--name", help="served model name (default: the model type)")
    p.add_argument("--version", type=int, help="version number (default: next free)")


def run(args):
    from pipelines.common import USER_VECTORS_KEY
    from tfrec.export import export_saved_model
    from tfrec.training import load_trained

    model, info = load_trained(args.run)
    metadata = {"run": str(args.run)}
    if info.get(USER_VECTORS_KEY):  # which vectors the user_tower input `user_vector` expects
        metadata[USER_VECTORS_KEY] = info[USER_VECTORS_KEY]
    path = export_saved_model(model, model.spec, args.export_base, args.name or info["model_type"],
                              version=args.version, metadata=metadata)
    print(f"exported {info['model_type']} -> {path}")
    return path

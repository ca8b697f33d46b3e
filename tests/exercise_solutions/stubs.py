"""Load a student stub from lessons/exercises, so that a reference solution only adds the backward."""
import importlib.util
from pathlib import Path

EXERCISES = Path(__file__).resolve().parents[2] / "lessons" / "exercises"


def load_stub(name: str):
    spec = importlib.util.spec_from_file_location(f"stub_{name}", EXERCISES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

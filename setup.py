"""tfrec: lifelong-user-behavior CTR models (DMGIN and friends) on the TensorFlow stack."""
from setuptools import find_packages, setup

# pyarrow 18+ needs NumPy 2, which TF 2.16 cannot use.
# The stack is pinned: scann's ops are compiled per TF minor and tensorflow-io is built for
# TF 2.16, so a newer TensorFlow breaks both. Measure again before changing any pin.
STACK = [
    "tensorflow==2.16.2",
    "tf-keras==2.16.0",
    "tensorflow-recommenders==0.7.3",
    "scann==1.3.2",
    "tensorflow-io==0.37.1",
    "tensorflow-serving-api==2.16.1",
    "numpy<2",
]

setup(
    name="tfrec",
    version="0.1.0",
    description="Production lifelong-user-behavior CTR models (DMGIN, DIN, ...) for TensorFlow",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["tfrec", "tfrec.*", "pipelines", "pipelines.*"]),
    package_data={"pipelines": ["configs/*.yaml"]},
    # redis: the client of the Redis user-state cache backend (tfrec/cache); grpcio comes with
    # tensorflow-serving-api.
    install_requires=STACK + ["pyyaml>=6", "tqdm>=4.60", "pyarrow>=15,<18", "redis>=5.2,<6"],
    extras_require={"dev": ["pytest>=7", "ruff"]},
    entry_points={"console_scripts": ["tfrec=tfrec.cli:main"]},
)

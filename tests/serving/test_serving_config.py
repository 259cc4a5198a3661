"""serving/models.config and serving/batching_parameters.txt parse as TF Serving's protos and
serve every model we export.

``ModelServerConfig`` comes from tensorflow-serving-api. ``BatchingParameters`` lives in
``tensorflow_serving/servables/tensorflow/session_bundle_config.proto``, which the pip package does
not ship (no ``tensorflow_serving.servables``); when it is not importable the test builds the
message from a field-for-field copy of the upstream definition (tensorflow/serving,
session_bundle_config.proto: fields 1-7, Int64Value / StringValue wrappers), so text_format still
rejects a misspelt field or a wrong type.
"""
from pathlib import Path

import pytest
from google.protobuf import text_format

from tfrec.models import MODELS

SERVING_DIR = Path(__file__).resolve().parents[2] / "serving"
MODELS_CONFIG = SERVING_DIR / "models.config"
BATCHING_PARAMETERS = SERVING_DIR / "batching_parameters.txt"

# Every model the repo can train and export must be served by models.config.
EXPECTED_MODEL_NAMES = set(MODELS)


def _batching_parameters_class():
    try:  # present in some builds of tensorflow-serving-api, absent from the 2.16 wheel
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2
        return session_bundle_config_pb2.BatchingParameters
    except ImportError:
        pass
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    F = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    file = descriptor_pb2.FileDescriptorProto(
        name="tfrec_tests/session_bundle_config_batching.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    msg = file.message_type.add(name="BatchingParameters")
    for name, number, label, type_, type_name in [
            ("max_batch_size", 1, F.LABEL_OPTIONAL, F.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
            ("batch_timeout_micros", 2, F.LABEL_OPTIONAL, F.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
            ("max_enqueued_batches", 3, F.LABEL_OPTIONAL, F.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
            ("num_batch_threads", 4, F.LABEL_OPTIONAL, F.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
            ("thread_pool_name", 5, F.LABEL_OPTIONAL, F.TYPE_MESSAGE, ".google.protobuf.StringValue"),
            ("allowed_batch_sizes", 6, F.LABEL_REPEATED, F.TYPE_INT64, None),
            ("pad_variable_length_inputs", 7, F.LABEL_OPTIONAL, F.TYPE_BOOL, None)]:
        field = msg.field.add(name=name, number=number, label=label, type=type_)
        if type_name:
            field.type_name = type_name
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


BatchingParameters = _batching_parameters_class()


def parse_models_config(text: str):
    from tensorflow_serving.config import model_server_config_pb2
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def parse_batching_parameters(text: str):
    return text_format.Parse(text, BatchingParameters())


@pytest.fixture(scope="module")
def models_config():
    return parse_models_config(MODELS_CONFIG.read_text())


@pytest.fixture(scope="module")
def batching():
    return parse_batching_parameters(BATCHING_PARAMETERS.read_text())


# -- models.config -------------------------------------------------------------------------------
def test_models_config_is_a_model_config_list(models_config):
    assert models_config.WhichOneof("config") == "model_config_list"
    assert len(models_config.model_config_list.config) > 0


def test_every_model_is_complete(models_config):
    for config in models_config.model_config_list.config:
        assert config.name, config
        assert config.base_path, config.name
        assert config.model_platform == "tensorflow", config.name
        assert config.HasField("model_version_policy"), f"{config.name}: no model_version_policy"
        policy = config.model_version_policy
        choice = policy.WhichOneof("policy_choice")
        assert choice in ("latest", "specific", "all"), config.name
        if choice == "latest":
            assert policy.latest.num_versions >= 1, config.name
        if choice == "specific":
            assert len(policy.specific.versions) >= 1, config.name


def test_base_path_is_the_container_layout(models_config):
    # The docker line in serving/TF_SERVING.md mounts saved_models/ at /models; base_path names the
    # model directory that holds the integer version dirs, never a version itself.
    for config in models_config.model_config_list.config:
        assert config.base_path.rstrip("/") == f"/models/{config.name}", config.name


def test_names_are_unique(models_config):
    names = [c.name for c in models_config.model_config_list.config]
    assert len(names) == len(set(names)), names


def test_every_exported_model_is_served(models_config):
    names = {c.name for c in models_config.model_config_list.config}
    assert {"din", "dmgin"} <= EXPECTED_MODEL_NAMES
    assert names == EXPECTED_MODEL_NAMES, (
        f"serving/models.config serves {sorted(names)}, tfrec.models.MODELS has {sorted(EXPECTED_MODEL_NAMES)}: "
        "add a config entry for every new model")


def test_dmgin_keeps_the_previous_version_for_rollback(models_config):
    dmgin = {c.name: c for c in models_config.model_config_list.config}["dmgin"]
    assert dmgin.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert dmgin.model_version_policy.latest.num_versions == 2


def test_labels_point_at_allowed_versions(models_config):
    # A label only resolves to a loaded version; with a specific policy it must be one of them.
    for config in models_config.model_config_list.config:
        policy = config.model_version_policy
        for label, version in config.version_labels.items():
            assert version > 0, (config.name, label)
            if policy.WhichOneof("policy_choice") == "specific":
                assert version in policy.specific.versions, (config.name, label, version)


def test_commented_rollback_example_parses():
    # The commented alternatives in models.config are meant to be uncommented as they are.
    text = """model_config_list { config { name: "dmgin" base_path: "/models/dmgin" model_platform: "tensorflow"
        model_version_policy { specific { versions: 1 } }
        version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } } }"""
    config = parse_models_config(text).model_config_list.config[0]
    assert list(config.model_version_policy.specific.versions) == [1]
    assert dict(config.version_labels) == {"stable": 1, "canary": 2}
    all_policy = parse_models_config('model_config_list { config { name: "x" model_version_policy { all {} } } }')
    assert all_policy.model_config_list.config[0].model_version_policy.WhichOneof("policy_choice") == "all"


def test_models_config_typo_is_rejected():
    good = MODELS_CONFIG.read_text()
    bad = good.replace('base_path: "/models/dmgin"', 'basepath: "/models/dmgin"')
    assert bad != good
    with pytest.raises(text_format.ParseError):
        parse_models_config(bad)


# -- batching_parameters.txt ---------------------------------------------------------------------
def test_batching_sizes_are_positive(batching):
    for field in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
        assert batching.HasField(field), f"{field} is not set"
    assert batching.max_batch_size.value > 0
    assert batching.max_enqueued_batches.value > 0
    assert batching.num_batch_threads.value > 0
    assert batching.batch_timeout_micros.value >= 0
    # The score path's p99 budget is 15 ms: a batch may not wait a sizeable part of it for peers.
    assert batching.batch_timeout_micros.value <= 5_000


def test_allowed_batch_sizes_end_with_max_batch_size(batching):
    sizes = list(batching.allowed_batch_sizes)
    if sizes:
        assert all(s > 0 for s in sizes), sizes
        assert sizes == sorted(set(sizes)), f"allowed_batch_sizes must increase: {sizes}"
        assert sizes[-1] == batching.max_batch_size.value, (sizes, batching.max_batch_size.value)


def test_variable_length_inputs_are_padded(batching):
    # candidate_item_id is [B, C] and the histories [B, L] with C and L per request: without
    # padding, two requests of different C in one batch fail.
    assert batching.pad_variable_length_inputs


def test_commented_allowed_batch_sizes_example_is_valid(batching):
    # The commented-out example must stay valid for the max_batch_size actually set.
    lines = [line.lstrip("# ") for line in BATCHING_PARAMETERS.read_text().splitlines()
             if line.lstrip("# ").startswith("allowed_batch_sizes:")]
    assert lines, "no allowed_batch_sizes example in batching_parameters.txt"
    for line in lines:
        example = parse_batching_parameters(line)
        sizes = list(example.allowed_batch_sizes)
        assert sizes == sorted(set(sizes)) and sizes[-1] == batching.max_batch_size.value, line


@pytest.mark.parametrize("bad", [
    "max_batch_size: 8",                      # a wrapper: needs { value: 8 }
    "max_batch_sise { value: 8 }",            # typo
    "batch_timeout_micros { value: 1.5 }",    # not an integer
    "pad_variable_length_input: true",        # typo
])
def test_batching_typo_is_rejected(bad):
    with pytest.raises(text_format.ParseError):
        parse_batching_parameters(bad)

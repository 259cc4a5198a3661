"""Property-based tests (hypothesis) of request validation of the served models.

For every model and every signature (``user_tower``, ``score``, ``serving_default``), any request
either fails with a ``ServingError`` whose code is INVALID_ARGUMENT / FAILED_PRECONDITION and whose
message is one short readable sentence (naming the input when the problem is one input), or returns
finite outputs (``probabilities`` in [0, 1]). Never another exception, never UNKNOWN / INTERNAL.

Requests are built from small *recipes* (batch, history length, candidates, seed and, per input, a
named hostile mode such as ``nan`` or ``after_request``), so a falsifying example reads as the recipe.
Models: the session's ``dmgin`` and ``din`` exports (``tests/serving/conftest.py``) and ``rich``, a
DIN over a schema with every input kind (bounded / hashed / multi-valued / numeric user features, a
user vector, context features, extra behavior features). Every test is derandomized.
"""
from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, note, settings
from hypothesis import strategies as st

from tests.models.test_models import DIN_CONFIG, NUM_GROUPS, SPEC
from tfrec.data.schema import FeatureDef
from tfrec.data.spec import SEQUENCE_FEATURES, FeatureSpec
from tfrec.export import export_saved_model
from tfrec.export.saved_model import read_export_metadata
from tfrec.models import DIN
from tfrec.serving.model_manager import Servable, ServingError
from tfrec.serving.requests import from_tensor_proto, predict_request, to_tensor_proto
from tfrec.testing import random_features

INVALID, PRECONDITION = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION
F32_MAX = float(np.finfo(np.float32).max)
SIGNATURES = ("user_tower", "score", "serving_default")
RICH_SPEC = FeatureSpec(
    n_items=40,
    max_history_length=16,
    user_vector_dim=3,
    user_features=(
        FeatureDef("age", "categorical", vocab_size=7),
        FeatureDef("city", "categorical", hash_buckets=11),
        FeatureDef("tags", "multi_categorical", vocab_size=9, max_len=3),
        FeatureDef("income", "numeric", transform="log1p"),
        FeatureDef("credit", "numeric", transform="standardize", mean=1.0, std=2.0, boundaries=(-1.0, 0.0, 1.0)),
    ),
    context_features=(FeatureDef("hour", "categorical", vocab_size=24), FeatureDef("price", "numeric")),
    behavior_features=(FeatureDef("dwell", "numeric"), FeatureDef("shop", "categorical", vocab_size=5)),
)
SPECS = {"dmgin": SPEC, "din": SPEC, "rich": RICH_SPEC}
MODELS = tuple(SPECS)
# Substrings of TensorFlow's graph dumps that must never reach a client.
NOISE = ("Graph execution error", "Detected at node", "{{node", "{{function_node", "defined at (most recent call last)",
         "Traceback", "[[", "device:CPU")
MAX_MESSAGE_CHARS = 600

PROPERTY = settings(max_examples=10)  # the rest: the 'tfrec' profile (tests/conftest.py)


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def servables(exported, tmp_path_factory):
    """name -> Servable: the session exports, ``rich``, and ``din_v2`` (a second export of the
    session's DIN: same weights and state layout, another fingerprint)."""
    base = tmp_path_factory.mktemp("property_models")
    tf.keras.utils.set_random_seed(3)
    rich = DIN(RICH_SPEC, DIN_CONFIG)
    rich(random_features(RICH_SPEC, 2, 4, seed=0))
    export_saved_model(rich, RICH_SPEC, base, "rich", version=1)
    export_saved_model(exported["models"]["din"], SPEC, base, "din", version=2)
    out = {name: Servable(name, 1, exported["base"] / name / "1") for name in ("dmgin", "din")}
    out["rich"] = Servable("rich", 1, base / "rich" / "1")
    out["din_v2"] = Servable("din", 2, base / "din" / "2")
    return out


def state_keys(servable):
    return sorted(k for k in servable.signature_defs["user_tower"].outputs if k != "fingerprint")


# -- requests from recipes -------------------------------------------------------------------------
def vocab_of(spec: FeatureSpec, name: str):
    """The id range of an int input (None: unbounded)."""
    if name in ("hist_item_id", "candidate_item_id"):
        return spec.n_items
    if name == "group_ids":
        return NUM_GROUPS
    for f in spec.user_fields() + spec.context_fields() + spec.behavior_fields() + SEQUENCE_FEATURES:
        if f.name == name:
            return spec.vocab_size(f)
    return None


def input_kind(name: str, np_dtype, state: bool) -> str:
    if name == "hist_timestamp":
        return "timestamps"
    if name == "request_timestamp":
        return "request_time"
    if name == "hist_length":
        return "length"
    if name == "fingerprint":
        return "fingerprint"
    if np.dtype(np_dtype).kind == "f":
        return "state_float" if state else "float"
    return "id"


MODES = {
    "id": ("minus_one", "negative", "out_of_range", "int_max", "int_min", "mixed"),
    "timestamps": ("after_request", "unsorted", "zero", "int64_max", "int64_min", "mixed"),
    "request_time": ("zero", "negative", "int64_max", "int64_min"),
    "length": ("zero", "negative", "over", "int32_max", "int32_min"),
    "fingerprint": ("other", "some_rows", "zero", "int64_min"),
    "float": ("zero", "nan", "inf", "neg_inf", "big", "max", "subnormal", "negative", "mixed"),
    "state_float": ("zero", "nan", "inf", "neg_inf", "big", "max", "subnormal", "negative", "mixed"),
}
FLOAT_SPECIALS = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, F32_MAX, -F32_MAX, 1e-45, -1e-45, -0.0, 0.0, 1.5],
                          np.float32)


def make_hostile(kind, mode, value, rng, vocab=None, request_ts=None, width=0):
    """``value`` (a valid array) replaced by a hostile array of the same shape and dtype."""
    shape, dtype = value.shape, value.dtype
    if kind in ("float", "state_float"):
        table = {"zero": 0.0, "nan": np.nan, "inf": np.inf, "neg_inf": -np.inf, "max": F32_MAX}
        if mode in table:
            return np.full(shape, table[mode], dtype)
        if mode == "big":
            return (rng.choice([-3e38, 3e38], shape)).astype(dtype)
        if mode == "subnormal":
            return (rng.choice([-1, 1], shape) * rng.uniform(1e-45, 1e-38, shape)).astype(dtype)
        if mode == "negative":
            return (-rng.exponential(100.0, shape)).astype(dtype)
        return rng.choice(FLOAT_SPECIALS, shape).astype(dtype)
    info = np.iinfo(dtype)
    if kind == "id":
        if mode == "minus_one":
            return np.full(shape, -1, dtype)
        if mode == "negative":
            return rng.integers(max(info.min, -10**6), 0, shape).astype(dtype)
        if mode == "out_of_range":
            lo = vocab if vocab is not None else 10**6
            return rng.integers(lo, min(lo + 10**6, info.max), shape).astype(dtype)
        if mode in ("int_max", "int_min"):
            return np.full(shape, info.max if mode == "int_max" else info.min, dtype)
        pool = [info.min, info.max, -1, 0, 1, (vocab or 10**6), (vocab or 10**6) + 1, -7]
        return rng.choice(np.array(pool, dtype), shape)
    if kind == "timestamps":
        if mode == "after_request":
            req = request_ts.astype(np.int64)[:, None]
            delta = np.sort(rng.integers(1, 10**7, shape), axis=1)
            return np.where(req > info.max - 10**7, info.max, req + delta).astype(dtype) if shape[1] else value
        if mode == "unsorted":
            return value[:, ::-1].copy() if shape[1] > 1 else value
        if mode in ("zero", "int64_max", "int64_min"):
            return np.full(shape, {"zero": 0, "int64_max": info.max, "int64_min": info.min}[mode], dtype)
        return rng.choice(np.array([info.min, info.max, 0, -1, 1_700_000_000], dtype), shape)
    if kind == "request_time":
        return {"zero": np.zeros(shape, dtype), "negative": -rng.integers(1, 10**12, shape).astype(dtype),
                "int64_max": np.full(shape, info.max, dtype), "int64_min": np.full(shape, info.min, dtype)}[mode]
    if kind == "length":
        if mode == "zero":
            return np.zeros(shape, dtype)
        if mode == "negative":
            return rng.integers(-100, 0, shape).astype(dtype)
        if mode == "over":
            return (width + rng.integers(1, 100, shape)).astype(dtype)
        return np.full(shape, info.max if mode == "int32_max" else info.min, dtype)
    assert kind == "fingerprint"
    if mode == "other":
        return (value ^ rng.integers(1, info.max, shape)).astype(dtype)
    if mode == "some_rows":
        out = value.copy()
        if len(out):
            out[rng.integers(0, len(out))] += 1
        return out
    return np.full(shape, 0 if mode == "zero" else info.min, dtype)


def valid_request(servable, spec, signature, batch, length, n_candidates, seed):
    """A valid request of ``signature`` (numpy), as a client builds it."""
    rng = np.random.default_rng(seed)
    features = random_features(spec, max(batch, 1), length, seed=seed)
    features = {k: np.asarray(v)[:batch] for k, v in features.items()}  # batch 0: empty rows
    user = {k: features[k] for k in servable.input_specs["user_tower"]}
    candidates = rng.integers(0, spec.n_items, (batch, n_candidates)).astype(np.int64)
    context = {f.name: features[f.name] for f in spec.context_fields()}
    if signature == "user_tower":
        return user
    if signature == "serving_default":
        return {**user, "candidate_item_id": candidates, **context}
    state = servable.predict("user_tower", user)
    return {**state, "candidate_item_id": candidates, **context}


@st.composite
def recipes(draw, servable, spec, signature, max_hostile=None):
    """(batch, history length, candidates, seed, {input: hostile mode})."""
    batch = draw(st.sampled_from([1, 2, 0, 3]), label="batch")
    length = draw(st.sampled_from([3, 0, 1, spec.max_history_length, spec.max_history_length + 1, 40]),
                  label="history_length")
    n_candidates = draw(st.sampled_from([3, 1, 0]), label="candidates")
    seed = draw(st.integers(0, 2**16), label="seed")
    names = sorted(servable.input_specs[signature])
    states = set(state_keys(servable)) if signature == "score" else set()
    hostile = draw(st.lists(st.sampled_from(names), unique=True, min_size=1,
                            max_size=max_hostile or len(names)), label="hostile inputs")
    modes = {}
    for name in hostile:
        kind = input_kind(name, servable.input_specs[signature][name][0], name in states)
        modes[name] = draw(st.sampled_from(MODES[kind]), label=f"{name} mode")
    return batch, length, n_candidates, seed, modes


def build_request(servable, spec, signature, recipe):
    batch, length, n_candidates, seed, modes = recipe
    inputs = valid_request(servable, spec, signature, batch, length, n_candidates, seed)
    rng = np.random.default_rng(seed + 1)
    states = set(state_keys(servable)) if signature == "score" else set()
    request_ts = inputs.get("request_timestamp")
    if "request_timestamp" in modes:  # timestamps are hostile relative to the request time actually sent
        inputs["request_timestamp"] = make_hostile("request_time", modes["request_timestamp"],
                                                   inputs["request_timestamp"], rng)
    for name, mode in sorted(modes.items()):
        if name == "request_timestamp":
            continue
        kind = input_kind(name, inputs[name].dtype, name in states)
        inputs[name] = make_hostile(kind, mode, inputs[name], rng, vocab=vocab_of(spec, name),
                                    request_ts=inputs.get("request_timestamp", request_ts),
                                    width=inputs.get("hist_item_id", np.zeros((0, 0))).shape[-1])
    return inputs


# -- checks ---------------------------------------------------------------------------------------
def assert_clean_error(err: ServingError, names=()):
    """INVALID_ARGUMENT / FAILED_PRECONDITION with one short readable sentence naming ``names``."""
    assert err.code in (INVALID, PRECONDITION), f"{err.code}: {err.message}"
    message = err.message
    assert message and message == message.strip() and "\n" not in message, repr(message)
    assert len(message) <= MAX_MESSAGE_CHARS, f"{len(message)} chars: {message}"
    for noise in NOISE:
        assert noise not in message, f"{noise!r} in {message!r}"
    for name in names:
        assert name in message, f"the message does not name {name!r}: {message!r}"


def assert_finite_outputs(servable, signature, inputs, outputs):
    batch = len(inputs["user_id" if signature != "score" else "fingerprint"])
    if signature == "user_tower":
        assert set(outputs) == set(state_keys(servable)) | {"fingerprint"}
        for name, value in outputs.items():
            assert value.shape[0] == batch, (name, value.shape)
            if value.dtype.kind == "f":
                assert np.isfinite(value).all(), f"user_tower output {name} is not finite: {value}"
        assert (outputs["fingerprint"] == read_export_metadata(servable.path)["fingerprint"]).all()
        return
    probabilities = outputs["probabilities"]
    assert probabilities.shape == inputs["candidate_item_id"].shape, probabilities.shape
    assert np.isfinite(probabilities).all(), f"probabilities not finite: {probabilities}"
    assert ((probabilities >= 0) & (probabilities <= 1)).all(), probabilities



def outcome(servable, signature, inputs, output_filter=()):
    """("ok", outputs) or ("error", ServingError); any other exception fails the test."""
    try:
        return "ok", servable.predict(signature, inputs, output_filter)
    except ServingError as err:
        return "error", err
    except Exception as err:  # noqa: BLE001 - the property: nothing else ever escapes
        pytest.fail(f"{signature}: {type(err).__name__} escaped instead of a ServingError: {str(err)[:500]}")


# -- value properties ----------------------------------------------------------------------------
@pytest.mark.parametrize("signature", SIGNATURES)
@pytest.mark.parametrize("model", MODELS)
@settings(PROPERTY, max_examples=25)
@given(data=st.data())
def test_hostile_values_give_a_clean_error_or_finite_probabilities(servables, model, signature, data):
    """Random batch (0 included), history length (0 and > max included), candidates (0 included) and
    hostile values in any subset of the inputs (ids negative / out of range / int64 extremes;
    timestamps after the request, unsorted, extreme; lengths negative / too long; floats NaN, inf,
    +-3e38, subnormal): a clean INVALID_ARGUMENT / FAILED_PRECONDITION (naming the input when only one is
    hostile) or finite outputs with probabilities in [0, 1]. A score state holding NaN / inf must be
    refused, naming that state input."""
    servable, spec = servables[model], SPECS[model]
    recipe = data.draw(recipes(servable, spec, signature), label="recipe")
    inputs = build_request(servable, spec, signature, recipe)
    note({k: (v.shape, v.dtype.name) for k, v in inputs.items()})
    bad_state = sorted(k for k in state_keys(servable) if signature == "score" and inputs[k].dtype.kind == "f"
                       and not np.isfinite(inputs[k]).all())
    kind, result = outcome(servable, signature, inputs)
    hostile = sorted(recipe[-1])
    if kind == "error":
        assert_clean_error(result, names=hostile if len(hostile) == 1 else ())
        if bad_state:  # refused as such, unless the error is about another hostile input (fingerprint first)
            others = [k for k in hostile if k not in bad_state]
            assert result.code == INVALID and any(k in result.message for k in bad_state + others), result.message
        return
    assert not bad_state, f"score accepted a state with NaN/inf in {bad_state}: {result}"
    assert_finite_outputs(servable, signature, inputs, result)


@pytest.mark.parametrize("model", MODELS)
@settings(PROPERTY, max_examples=15)
@given(data=st.data())
def test_two_tower_path_agrees_with_end_to_end(servables, model, data):
    """Whatever hostile user inputs serving_default accepts, user_tower accepts too, and score of its
    state gives the same probabilities (both paths sanitize the same way)."""
    servable, spec = servables[model], SPECS[model]
    recipe = data.draw(recipes(servable, spec, "serving_default"), label="recipe")
    recipe = recipe[:-1] + ({k: v for k, v in recipe[-1].items() if k != "candidate_item_id"},)
    inputs = build_request(servable, spec, "serving_default", recipe)
    kind, end_to_end = outcome(servable, "serving_default", inputs)
    user = {k: inputs[k] for k in servable.input_specs["user_tower"]}
    tower_kind, state = outcome(servable, "user_tower", user)
    if kind == "error":
        assert tower_kind == "error" or any(k in end_to_end.message for k in inputs if k not in user), (
            f"serving_default refused ({end_to_end.message}) what user_tower accepted")
        return
    assert tower_kind == "ok", f"user_tower refused ({state.message}) what serving_default accepted"
    context = {f.name: inputs[f.name] for f in spec.context_fields()}
    score_kind, scored = outcome(servable, "score", {**state, "candidate_item_id": inputs["candidate_item_id"],
                                                      **context})
    assert score_kind == "ok", f"score refused the state user_tower returned: {scored.message}"
    np.testing.assert_allclose(scored["probabilities"], end_to_end["probabilities"], atol=1e-5)


@pytest.mark.parametrize("model", MODELS)
@settings(PROPERTY, max_examples=10)
@given(data=st.data())
def test_non_finite_score_state_is_refused_naming_the_input(servables, model, data):
    servable, spec = servables[model], SPECS[model]
    batch = data.draw(st.integers(1, 3), label="batch")
    inputs = valid_request(servable, spec, "score", batch, data.draw(st.sampled_from([0, 4, 16])), 2,
                           data.draw(st.integers(0, 100), label="seed"))
    floats = [k for k in state_keys(servable) if inputs[k].dtype.kind == "f"]
    name = data.draw(st.sampled_from(floats), label="state input")
    value = inputs[name].copy()
    flat = value.reshape(-1)
    positions = data.draw(st.lists(st.integers(0, flat.size - 1), min_size=1, max_size=3), label="positions")
    flat[positions] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]), label="value")
    inputs[name] = value
    kind, result = outcome(servable, "score", inputs)
    assert kind == "error", f"score accepted {name} holding NaN/inf: {result}"
    assert result.code == INVALID
    assert_clean_error(result, names=[name])


@settings(PROPERTY, max_examples=8)
@given(data=st.data())
def test_state_from_another_export_is_refused_with_a_short_fingerprint_error(servables, data):
    """A state computed by another export of the same model (same layout, other fingerprint), or one
    whose fingerprint is any other int64 in some rows: INVALID_ARGUMENT, short, says "fingerprint"."""
    source, target = data.draw(st.sampled_from([("din", "din_v2"), ("din_v2", "din"), ("din", "din"),
                                                ("dmgin", "dmgin"), ("rich", "rich")]), label="source, target")
    batch = data.draw(st.integers(1, 3), label="batch")
    spec = SPECS["din" if source.startswith("din") else source]
    inputs = valid_request(servables[source], spec, "score", batch, 4, 3, data.draw(st.integers(0, 100)))
    if source == target:  # forge the fingerprint of some rows
        rows = data.draw(st.lists(st.integers(0, batch - 1), min_size=1, unique=True), label="rows")
        other = data.draw(st.integers(-2**63, 2**63 - 1).filter(lambda v: v != int(inputs["fingerprint"][0])),
                          label="fingerprint")
        inputs["fingerprint"] = inputs["fingerprint"].copy()
        inputs["fingerprint"][rows] = other
    kind, result = outcome(servables[target], "score", inputs)
    assert kind == "error", "a state of another export was scored"
    assert result.code == INVALID
    assert "fingerprint" in result.message
    assert_clean_error(result)
    assert len(result.message) <= 300, result.message


# -- malformed requests ---------------------------------------------------------------------------
STRUCTURE_KINDS = ("missing", "extra", "dtype", "rank", "batch", "fixed_dim", "malformed_proto", "string_tensor",
                   "unknown_signature", "output_filter")
OTHER_DTYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float16,
                np.float32, np.float64, np.bool_, np.complex64)


@st.composite
def malformed(draw, servable, spec, signature, kind):
    """(inputs, signature name sent, output_filter, names the message must contain, codes allowed)."""
    batch = draw(st.sampled_from([2, 1, 0, 3]), label="batch")
    inputs = valid_request(servable, spec, signature, batch, draw(st.sampled_from([3, 0, 17])), 2,
                           draw(st.integers(0, 100), label="seed"))
    names = sorted(inputs)
    as_protos = draw(st.booleans(), label="as TensorProtos")
    sent, filters, must_name, codes = signature, (), [], (INVALID,)
    if kind == "missing":
        gone = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True), label="missing")
        inputs = {k: v for k, v in inputs.items() if k not in gone}
        must_name = gone
    elif kind == "extra":
        others = sorted({n for s in SIGNATURES for n in servable.input_specs[s]} - set(names))
        added = draw(st.lists(st.sampled_from(others + ["extra", "label", "item_id", "hist_length_", "Candidate"]),
                              min_size=1, max_size=2, unique=True), label="extra")
        for name in added:
            inputs[name] = np.zeros(batch, np.int64)
        must_name = added
    elif kind in ("dtype", "string_tensor"):
        name = draw(st.sampled_from(names), label="input")
        if kind == "dtype":
            dtype = draw(st.sampled_from([d for d in OTHER_DTYPES if np.dtype(d) != inputs[name].dtype]), label="dtype")
            with np.errstate(all="ignore"):
                inputs[name] = inputs[name].astype(dtype)
        else:
            inputs[name] = np.full(inputs[name].shape, draw(st.sampled_from([b"1", b"\xff", "x"])), object)
        must_name = [name]
    elif kind == "rank":
        name = draw(st.sampled_from(names), label="input")
        value = inputs[name]
        scalar = np.asarray(value.reshape(-1)[0] if value.size else 0, value.dtype)
        inputs[name] = draw(st.sampled_from([value[..., None], scalar, value[None]]
                                            + ([value.reshape(-1)] if value.ndim > 1 else [])), label="reshaped")
        must_name = [name]
    elif kind == "batch":
        name = draw(st.sampled_from(names), label="input")
        value = inputs[name]
        inputs[name] = np.concatenate([value, value[:1] if len(value) else np.zeros((1,) + value.shape[1:],
                                                                                    value.dtype)])
        must_name = [name]
    elif kind == "fixed_dim":
        fixed = [n for n in names if any(d is not None for d in servable.input_specs[signature][n][2][1:])]
        name = draw(st.sampled_from(fixed or names), label="input")
        value = inputs[name]
        if fixed:  # grow one fixed (non-batch) dimension
            dims = servable.input_specs[signature][name][2]
            axis = draw(st.sampled_from([i for i, d in enumerate(dims) if i and d is not None]), label="axis")
            inputs[name] = np.concatenate([value, np.take(value, [0] * 1, axis=axis) if value.shape[axis] else
                                           np.zeros(value.shape[:axis] + (1,) + value.shape[axis + 1:], value.dtype)],
                                          axis=axis)
        else:  # this signature has no fixed dimension: add one
            inputs[name] = value[..., None]
        must_name = [name]
    elif kind == "malformed_proto":
        name = draw(st.sampled_from(names), label="input")
        proto = to_tensor_proto(inputs[name])
        how = draw(st.sampled_from(["short_content", "too_many_values", "negative_dim", "dtype_invalid"]),
                   label="how")
        if how == "short_content":
            proto.tensor_content = proto.tensor_content + b"\x00"
        elif how == "too_many_values":
            proto.tensor_content = b""
            proto.tensor_shape.Clear()
            proto.tensor_shape.dim.add(size=1)
            proto.int64_val.extend([1, 2, 3])
            proto.float_val.extend([1.0, 2.0, 3.0])
            proto.int_val.extend([1, 2, 3])
        elif how == "negative_dim":
            proto.tensor_shape.dim.add(size=-2)
        else:
            proto.dtype = 0
        inputs = {k: to_tensor_proto(v) for k, v in inputs.items()}
        inputs[name] = proto
        as_protos = False
        must_name = [name]
    elif kind == "unknown_signature":
        sent = draw(st.sampled_from(["nope", "Score", "user_tower ", "serving-default", "\u00e9"]), label="signature")
        codes = (PRECONDITION,)
        must_name = [sent]
    else:
        alias = draw(st.sampled_from(["nope", "probability", "fingerprint_", "label"]), label="output alias")
        filters = (alias,)
        must_name = [alias]
    if as_protos:
        inputs = {k: to_tensor_proto(v) for k, v in inputs.items()}
    return inputs, sent, filters, must_name, codes


@pytest.mark.parametrize("kind", STRUCTURE_KINDS)
@settings(PROPERTY, max_examples=8)
@given(data=st.data())
def test_malformed_requests_are_refused_naming_the_input(servables, kind, data):
    model = data.draw(st.sampled_from(MODELS), label="model")
    signature = data.draw(st.sampled_from(SIGNATURES), label="signature")
    servable, spec = servables[model], SPECS[model]
    inputs, sent, filters, must_name, codes = data.draw(malformed(servable, spec, signature, kind), label="request")
    kind_, result = outcome(servable, sent, inputs, filters)
    assert kind_ == "error", f"a malformed request ({kind}) was served"
    assert result.code in codes, f"{result.code}: {result.message}"
    assert_clean_error(result, names=must_name)


# -- through gRPC ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stub(server):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(server.target)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


@settings(PROPERTY, max_examples=12)
@given(data=st.data())
def test_grpc_answers_exactly_what_the_servable_answers(servables, stub, data):
    """The status code and message (or the outputs) travel unchanged through the real server."""
    model = data.draw(st.sampled_from(["dmgin", "din"]), label="model")
    signature = data.draw(st.sampled_from(SIGNATURES), label="signature")
    servable, spec = servables[model], SPECS[model]
    if data.draw(st.booleans(), label="malformed"):
        kind = data.draw(st.sampled_from([k for k in STRUCTURE_KINDS if k != "string_tensor"]), label="kind")
        inputs, sent, filters, _, _ = data.draw(malformed(servable, spec, signature, kind), label="request")
    else:
        inputs = build_request(servable, spec, signature, data.draw(recipes(servable, spec, signature), label="recipe"))
        sent, filters = signature, ()
    expected_kind, expected = outcome(servable, sent, inputs, filters)
    request = predict_request(model, {}, sent, output_filter=filters)
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(value if not isinstance(value, np.ndarray) else to_tensor_proto(value))
    try:
        response = stub.Predict(request, timeout=60)
    except grpc.RpcError as err:
        assert expected_kind == "error", f"gRPC failed ({err.code()}: {err.details()}) but in-process served"
        assert (err.code(), err.details()) == (expected.code, expected.message)
        assert_clean_error(expected)
        return
    assert expected_kind == "ok", f"gRPC served what in-process refused: {expected.message}"
    got = {k: from_tensor_proto(v) for k, v in response.outputs.items()}
    assert set(got) == set(expected)
    for key, value in got.items():
        np.testing.assert_allclose(value, expected[key], atol=1e-6, err_msg=key)

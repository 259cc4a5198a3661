"""The declarative schema: YAML -> FeatureSpec, validation messages, spec.json round trips."""
import json

import pytest

from tfrec.data.schema import FeatureDef, SchemaError, parse_schema
from tfrec.data.spec import FeatureSpec

FULL = """
max_history_length: 50
user:
  - {name: age, kind: categorical, vocab_size: 7}
  - {name: tags, kind: multi_categorical, vocab_size: 20, max_len: 4}
  - {name: income, kind: numeric, transform: log1p}
context:
  - {name: hour, kind: categorical, vocab_size: 24}
  - {name: slot, kind: categorical, hash_buckets: 100}
item:
  - {name: category, kind: categorical, vocab_size: 10}
  - {name: genres, kind: multi_categorical, vocab_size: 18, max_len: 6}
  - {name: price, kind: numeric, transform: standardize}
  - {name: year, kind: numeric, boundaries: [1980, 1990, 2000]}
  - {name: mm, kind: dense, dim: 8, embedding_dim: 4}
behavior:
  - {name: location, kind: categorical, vocab_size: 30}
  - {name: dwell, kind: numeric}
"""


def _spec(tmp_path, text, **defaults):
    path = tmp_path / "schema.yaml"
    path.write_text(text)
    return FeatureSpec.from_schema_file(path, **{"n_items": 100, **defaults})


def test_full_schema_loads_into_spec(tmp_path):
    spec = _spec(tmp_path, FULL, max_history_length=9)
    assert spec.max_history_length == 50  # the file's wins over the defaults
    assert [f.name for f in spec.user_features] == ["age", "tags", "income"]
    assert [f.name for f in spec.context_features] == ["hour", "slot"]
    assert [f.name for f in spec.item_features] == ["category", "genres", "price", "year", "mm"]
    assert spec.item_features[3].boundaries == (1980.0, 1990.0, 2000.0)
    assert spec.statistics_needed() == (("item", "price"),)
    # Record layouts: user features in the history record, context in the example, hist_<name>.
    hist = [f.name for f in spec.history_record_features()]
    assert hist[:4] == ["user_id", "age", "tags", "income"]
    assert hist[-2:] == ["hist_location", "hist_dwell"]
    example = [f.name for f in spec.example_record_features()]
    assert example == ["user_id", "item_id", "request_timestamp", "label", "hour", "slot"]
    tags = next(f for f in spec.user_fields() if f.name == "tags")
    assert tags.multi and tags.max_len == 4 and tags.vocab == 20
    slot = next(f for f in spec.context_fields() if f.name == "slot")
    assert slot.vocab is None  # hashed: any int64
    # Signatures: user features in user_tower ([B, max_len] for multi), context for score.
    sig = spec.user_input_signature()
    assert sig["tags"].shape.as_list() == [None, 4] and sig["income"].dtype.name == "float32"
    assert sig["hist_location"].shape.as_list() == [None, None]
    assert sorted(spec.context_input_signature()) == ["hour", "slot"]
    # Item features are never inputs.
    assert "category" not in sig and "category" not in spec.context_input_signature()


def test_spec_json_round_trip_with_statistics(tmp_path):
    spec = _spec(tmp_path, FULL).with_statistics({("item", "price"): (12.5, 3.0)})
    price = spec.item_features[2]
    assert (price.mean, price.std) == (12.5, 3.0) and not spec.statistics_needed()
    again = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec


def test_old_spec_json_loads_as_default_schema():
    old = {"n_items": 50, "n_user_segments": 4, "max_history_length": 3, "n_behavior_types": 6,
           "behavior_categories": [0, 0, 1, 1, 2, 3], "semantic_id_levels": 0, "semantic_id_vocab": 0}
    spec = FeatureSpec.from_dict(old)
    assert spec.user_features == (FeatureDef("user_segment", "categorical", vocab_size=4),)
    assert spec.context_features == spec.item_features == spec.behavior_features == ()
    assert [f.name for f in spec.history_record_features()] == [
        "user_id", "user_segment", "hist_item_id", "hist_behavior_type", "hist_timestamp", "hist_duration",
        "hist_amount"]
    assert [f.name for f in spec.example_record_features()] == ["user_id", "item_id", "request_timestamp", "label"]
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


BAD = {
    "unknown kind": ("item:\n  - {name: color, kind: colour, vocab_size: 3}\n", "item.color", "unknown kind 'colour'"),
    "missing vocabulary": ("user:\n  - {name: city, kind: categorical}\n", "user.city",
                           "needs exactly one of vocab_size"),
    "both vocab and hash": ("user:\n  - {name: city, kind: categorical, vocab_size: 3, hash_buckets: 9}\n",
                            "user.city", "exactly one of vocab_size"),
    "duplicate names": ("user:\n  - {name: age, kind: numeric}\nitem:\n  - {name: age, kind: numeric}\n",
                        "item.age", "duplicate feature name (also declared in 'user')"),
    "list in behavior": ("behavior:\n  - {name: tags, kind: multi_categorical, vocab_size: 5, max_len: 2}\n",
                         "behavior.tags", "not allowed in section 'behavior'"),
    "dense in user": ("user:\n  - {name: vec, kind: dense, dim: 4}\n", "user.vec", "not allowed in section 'user'"),
    "multi without max_len": ("item:\n  - {name: genres, kind: multi_categorical, vocab_size: 5}\n",
                              "item.genres", "needs max_len"),
    "dense without dim": ("item:\n  - {name: mm, kind: dense}\n", "item.mm", "needs dim"),
    "unknown key": ("item:\n  - {name: price, kind: numeric, normalise: true}\n", "item.price",
                    "unknown key(s) ['normalise']"),
    "bad transform": ("item:\n  - {name: price, kind: numeric, transform: sqrt}\n", "item.price",
                      "unknown transform 'sqrt'"),
    "unsorted boundaries": ("item:\n  - {name: price, kind: numeric, boundaries: [3, 1]}\n", "item.price",
                            "strictly increasing"),
    "reserved name": ("context:\n  - {name: label, kind: numeric}\n", "context.label", "reserved"),
    "builtin behavior field": ("behavior:\n  - {name: timestamp, kind: numeric}\n", "behavior.timestamp",
                               "built-in behavior field"),
    "bad name": ("user:\n  - {name: Age, kind: numeric}\n", "user.Age", "must match"),
    "vocab on numeric": ("item:\n  - {name: price, kind: numeric, vocab_size: 3}\n", "item.price",
                         "apply to categorical"),
    "unknown section": ("items:\n  - {name: price, kind: numeric}\n", "schema.yaml",
                        "unknown top-level key(s) ['items']"),
    "section not a list": ("user: {name: age}\n", "user", "a section is a list"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_schema_names_the_field_and_the_fix(tmp_path, case):
    text, where, what = BAD[case]
    with pytest.raises(SchemaError) as info:
        _spec(tmp_path, text)
    message = str(info.value)
    assert message.startswith("schema ") and str(tmp_path / "schema.yaml") in message
    assert where in message and what in message, message


def test_invalid_yaml_is_a_schema_error(tmp_path):
    with pytest.raises(SchemaError, match="not valid YAML"):
        _spec(tmp_path, "user: [\n")


def test_python_declarations_are_validated_too():
    with pytest.raises(SchemaError, match="item.genres.*needs max_len"):
        FeatureSpec(n_items=5, item_features=(FeatureDef("genres", "multi_categorical", vocab_size=3),))
    with pytest.raises(SchemaError, match="duplicate feature name"):
        FeatureSpec(n_items=5, user_features=(FeatureDef("x", "numeric"),),
                    context_features=(FeatureDef("x", "numeric"),))
    parsed = parse_schema({"item": [{"name": "c", "kind": "categorical", "vocab_size": 3}]})
    assert parsed["item_features"] == (FeatureDef("c", "categorical", vocab_size=3),)

"""StyleOptions: coercion from strings, validation naming the field, stable hashing, derived flags."""

import argparse

import pytest

from nst_core import options
from nst_core.errors import InputError
from nst_core.options import StyleOptions


def test_from_strings_coerces():
    o = StyleOptions.from_dict({"size": "256", "style_weight": "3.5", "style_layers": "block1_conv1, block2_conv1",
                                "steps": "10.0"})
    assert o.size == 256 and o.style_weight == 3.5 and o.steps == 10
    assert o.style_layers == ("block1_conv1", "block2_conv1")


@pytest.mark.parametrize("bad, field", [
    ({"size": "0"}, "size"), ({"size": "-5"}, "size"), ({"size": "abc"}, "size"), ({"size": "12.5"}, "size"),
    ({"style_weight": "-1"}, "style_weight"), ({"tv_weight": "nan"}, "tv_weight"),
    ({"content_weight": "inf"}, "content_weight"), ({"optimizer": "sgd"}, "optimizer"),
    ({"style_layers": "block9_conv1"}, "style_layers"), ({"style_layers": ""}, "style_layers"),
    ({"style_layer_weights": "1,2"}, "style_layer_weights"), ({"precision": "int8"}, "precision"),
])
def test_bad_values_name_the_field(bad, field):
    with pytest.raises(InputError, match=field):
        StyleOptions.from_dict(bad)


def test_unknown_key_refused():
    with pytest.raises(InputError, match="unknown option.*colour"):
        StyleOptions.from_dict({"colour": "red"})


def test_stable_hash_ignores_engine_fields_and_is_stable():
    a = StyleOptions(size=256)
    assert a.stable_hash() == StyleOptions.from_dict({"size": "256"}).stable_hash()
    assert a.stable_hash() == a.replace(precision="float32").stable_hash()
    assert a.stable_hash() != a.replace(seed=1).stable_hash()
    assert len(a.stable_hash()) == 64


def test_scales_double_up_to_size():
    assert StyleOptions(size=512, min_size=128).scales() == [128, 256, 512]
    assert StyleOptions(size=300, min_size=128).scales() == [150, 300]
    assert StyleOptions(size=100, min_size=128).scales() == [100]
    assert StyleOptions(size=512).scales() == [64, 128, 256, 512]  # num_scales=4
    assert StyleOptions(size=256).scales() == [32, 64, 128, 256]
    assert StyleOptions(size=256, min_size=64).scales() == [64, 128, 256]
    assert StyleOptions(size=1024, num_scales=2, look_size=1024).scales() == [512, 1024]
    assert StyleOptions(size=512, num_scales=1).scales() == [512]


def test_schedule_gives_coarse_scales_steps_by_their_side_and_ends_with_steps():
    assert StyleOptions(size=512, num_scales=3, coarse_steps=40, steps=20, coarse_steps_power=1,
                        refine_steps_per_doubling=0).schedule() == [
        (128, 40), (256, 20), (512, 20)]
    assert StyleOptions(size=1024, num_scales=4, coarse_steps=25, steps=7, look_size=1024,
                        coarse_steps_power=1, refine_steps_per_doubling=0).schedule() == [
        (128, 25), (256, 13), (512, 7), (1024, 7)]
    # A 256px output's 64px scale is cheap: with power 1 it gets twice a 128px scale's steps.
    assert StyleOptions(size=256, num_scales=3, coarse_steps=30, steps=15, coarse_steps_power=1).schedule() == [
        (64, 60), (128, 30), (256, 15)]
    assert StyleOptions(size=300, num_scales=3, coarse_steps=30, coarse_steps_power=1).schedule()[:2] == [
        (75, 52), (150, 26)]
    # The defaults: 1.41x (2 ** 0.5) the steps at each halving, the same at every size.
    assert StyleOptions(size=256).schedule() == [(32, 30), (64, 22), (128, 15), (256, 12)]
    assert StyleOptions(size=256, coarse_steps_power=0).schedule()[:3] == [(32, 15), (64, 15), (128, 15)]


def test_a_shallow_final_scale_above_256px_gets_more_steps_per_doubling():
    assert StyleOptions(size=512).schedule() == [(64, 22), (128, 15), (256, 11), (512, 22)]
    assert StyleOptions(size=384).schedule()[-1] == (384, 18)
    assert StyleOptions(size=256).schedule()[-1] == (256, 12)  # the reference side: steps
    assert StyleOptions(size=128).schedule()[-1] == (128, 12)  # never fewer than steps
    assert StyleOptions(size=512, refine_steps_per_doubling=0).schedule()[-1] == (512, 12)
    assert StyleOptions(size=512, refine="full").schedule()[-1] == (512, 12)  # a full-depth final scale: steps
    # above look_size the look is the 512px output's, refine included; detail scales keep detail_steps
    assert StyleOptions(size=2048).stages()[3:] == [(512, 22, "refine"), (1024, 6, "detail"), (2048, 6, "detail")]


def test_a_shallow_final_scale_below_512px_gets_less_content_weight():
    assert StyleOptions(size=512).refine_options().content_weight == 0.22
    assert StyleOptions(size=2048).refine_options().content_weight == 0.22  # its 512px look, and the detail scales
    assert StyleOptions(size=256).refine_options().content_weight == 0.11
    assert StyleOptions(size=384).refine_options().content_weight == pytest.approx(0.165)
    assert StyleOptions(size=256, refine_content_power=0).refine_options().content_weight == 0.22
    assert StyleOptions(size=256, refine_content_weight=0.4, refine_content_power=2).refine_options().content_weight \
        == pytest.approx(0.1)


def test_shallow_refine_keeps_shallow_layers_and_their_weights():
    o = StyleOptions(style_layer_weights=(1, 2, 3, 4, 5), refine_content_weight=0.5)
    r = o.refine_options()
    assert r.style_layers == ("block1_conv1", "block2_conv1", "block3_conv1")
    assert r.style_layer_weights == (1.0, 2.0, 3.0)
    assert (r.content_layer, r.content_weight) == ("block3_conv1", 0.5)
    assert o.replace(refine="full").refine_options() is None
    assert o.replace(num_scales=1).refine_options() is None  # a single scale uses every layer
    assert o.replace(style_layers=("block4_conv1", "block5_conv1"), style_layer_weights=()).refine_options() is None


def test_every_option_becomes_a_flag():
    p = argparse.ArgumentParser()
    options.add_arguments(p)
    ns = p.parse_args(["--size", "64", "--style-layers", "block1_conv1", "--preserve-colors", "luminance"])
    o = options.from_namespace(ns)
    assert (o.size, o.style_layers, o.preserve_colors) == (64, ("block1_conv1",), "luminance")
    flags = {a.dest for a in p._actions}
    assert {s.name for s in options.specs()} <= flags


def test_flex_regexes_accept_defaults():
    import re

    for s in options.specs():
        assert re.fullmatch(s.regex(), s.default_text()) or s.default_text() == "", s.name


def test_help_lists_the_valid_values():
    p = argparse.ArgumentParser()
    options.add_arguments(p)
    text = " ".join(p.format_help().split())
    assert "{lbfgs,adam}" in text and "one of lbfgs, adam; default: lbfgs" in text
    assert "one of max, avg; default: max" in text and "one of shallow, full; default: shallow" in text
    assert "comma list of block1_conv1, block1_conv2," in text
    for s in options.specs():
        if s.choices:
            assert all(c in options.help_text(s) for c in s.choices), s.name


def test_negative_looking_list_values_reach_validation():
    argv = options.join_negative_values(["--style-blend", "-1,2", "--size", "64", "--style_layer_weights", "-.5",
                                         "--style-weights", "-3"], extra_flags=("--style-weights",))
    assert argv == ["--style-blend=-1,2", "--size", "64", "--style_layer_weights=-.5", "--style-weights=-3"]
    p = argparse.ArgumentParser()
    options.add_arguments(p, defaults_none=True)
    ns = p.parse_args(options.join_negative_values(["--style-blend", "-1,2"]))
    with pytest.raises(InputError, match=r"option style_blend: -1.0 is below the minimum 0"):
        options.from_namespace(ns)


def test_options_added_later_leave_earlier_outputs_done():
    """A default run's hash is the one it had before mask_feather and background existed (commit 8522e0c),
    so a catalog's outputs stay done; set, they count. A new per-pair field belongs in HASHED_IF_SET."""
    from nst_core.options import HASHED_IF_SET

    # the defaults before issue 20's schedule, spelled out (coarse_steps_power did not exist: power 1)
    old = StyleOptions(num_scales=3, coarse_steps=30, min_size=64, coarse_steps_power=1, steps=15,
                       refine_content_weight=0.25, refine_steps_per_doubling=0, refine_content_power=0)
    assert old.stable_hash() == "90dab2a526d23c5dc72c43dec4047d568553d1bcc7ce9e47f162b69c52d88e77", \
        f"a new per-pair option changed every fingerprint; add it to {HASHED_IF_SET}"
    assert old.replace(coarse_steps_power=0.5).stable_hash() != old.stable_hash()
    assert old.replace(refine_steps_per_doubling=4).stable_hash() != old.stable_hash()
    assert old.replace(refine_content_power=1).stable_hash() != old.stable_hash()
    assert StyleOptions().stable_hash() != old.stable_hash()  # the new schedule is a new output
    assert StyleOptions(mask_feather=0).stable_hash() != StyleOptions().stable_hash()
    assert StyleOptions(background="black").stable_hash() != StyleOptions().stable_hash()


def test_a_pickle_holds_only_the_changed_fields():
    import pickle

    changed = StyleOptions(size=300, seed=5, style_layers=("block1_conv1", "block2_conv1"))
    for opts in (StyleOptions(), changed):
        assert pickle.loads(pickle.dumps(opts)) == opts
    assert changed.changed() == {"size": 300, "seed": 5, "style_layers": ("block1_conv1", "block2_conv1")}
    assert len(pickle.dumps(StyleOptions(size=300))) < 150  # every pair of a run's shuffle carries one

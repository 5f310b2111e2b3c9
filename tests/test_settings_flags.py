"""One source for the flags: every Settings field's Flag (engine/settings.py)
against the CLI's flags (tools/optimize.py), the panel's properties
(addon/properties.py) and docs/cli.md.

docs/cli.md is generated: after changing a Flag or a CLI flag, run
    bash tools/dev.sh python tests/test_settings_flags.py
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import _bootstrap  # noqa: E402

_bootstrap.load_package()

import pytest  # noqa: E402

import optimize  # noqa: E402
from sge_optimizer.engine.settings import CATEGORIES, MODES, Settings, cli_flag, flag_of  # noqa: E402

CLI_DOC = ROOT / "docs" / "cli.md"
REGENERATE = "bash tools/dev.sh python tests/test_settings_flags.py"
GROUP_OF = {"user": "options", "advanced": "Advanced", "research": "Research"}
FIELDS = [f.name for f in fields(Settings)]


# docs/cli.md ---------------------------------------------------------------------------------
def _flag_cell(action) -> str:
    names = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest}`"
    if action.option_strings and action.nargs != 0:
        metavar = "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper()
        if action.nargs == "?":  # --lit [{auto,on,off}], --no-lit
            first, *rest = action.option_strings
            return ", ".join([f"`{first} [{metavar}]`"] + [f"`{s}`" for s in rest])
        names = names[:-1] + f" {metavar}`"
    return names


def _help_cell(action, parser) -> str:
    params = dict(vars(action), prog=parser.prog)
    if action.choices is not None:
        params["choices"] = ", ".join(map(str, action.choices))
    text = (action.help or "") % params
    if action.dest in Settings.__dataclass_fields__ and flag_of(action.dest).doc:
        text += f" (why: [decisions/{flag_of(action.dest).doc}.md](decisions/{flag_of(action.dest).doc}.md))"
    if action.required:
        text += " (required)"
    return text.replace("|", "\\|")


def _parser_markdown(parser, level="##") -> list:
    lines = []
    for group in parser._action_groups:  # argparse has no public way to walk its groups
        actions = [a for a in group._group_actions if not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        title = {"positional arguments": "Arguments", "options": "Options"}.get(group.title, group.title)
        lines += [f"{level} {title}", ""]
        if group.description:
            lines += [group.description[0].upper() + group.description[1:] + ".", ""]
        lines += ["| Flag | Settings field | What it does |", "|---|---|---|"]
        for a in actions:
            field = ", ".join(f"`{name}`" for name in FIELDS if name == a.dest
                              or flag_of(name).set_by in a.option_strings)
            lines.append(f"| {_flag_cell(a)} | {field} | {_help_cell(a, parser)} |")
        lines.append("")
    return lines


def cli_reference_markdown() -> str:
    """docs/cli.md: tools/optimize.py's two parsers as tables, group by group."""
    lines = ["# `tools/optimize.py`: every flag", "",
             "<!-- Generated from engine/settings.py (each Settings field's Flag) and tools/optimize.py's",
             f"     parsers; do not edit by hand. Regenerate: {REGENERATE} -->", "",
             "Run it inside Blender (`blender --background scene.blend --python tools/optimize.py -- FLAGS`) or "
             "with the `bpy` module (`python tools/optimize.py scene.blend FLAGS`). Every Settings field has its "
             "flag; the Python API takes the field names (`Settings(lr_decay=0.1)`).", "",
             "Exit status: 0 success, 2 bad input (nothing is optimized or written), 1 other failure, "
             "130 interrupted (Ctrl+C keeps the result so far and still writes `--save` and `--summary`).", ""]
    lines += _parser_markdown(optimize.build_parser())
    lines += ["## Fit LOD to Reference: `optimize.py lod`", "",
              "`python tools/optimize.py lod scene.blend --object NAME [flags]`: "
              + optimize.build_lod_parser().description + ".", ""]
    lines += _parser_markdown(optimize.build_lod_parser(), "###")
    return "\n".join(lines).rstrip() + "\n"


def test_cli_doc_is_generated_from_the_flags():
    expected = cli_reference_markdown()
    actual = CLI_DOC.read_text(encoding="utf-8") if CLI_DOC.exists() else ""
    assert actual == expected, f"docs/cli.md is out of date with Settings and the CLI: run `{REGENERATE}`"


# The flags themselves ------------------------------------------------------------------------
def test_every_field_has_a_flag():
    for f in fields(Settings):
        flag = f.metadata.get("flag")
        assert flag is not None, f"Settings.{f.name} has no Flag: declare it with setting(...)"
        assert flag.category in CATEGORIES and flag.help, f.name
        assert (f.default is None) == bool(flag.auto), f"{f.name}: a None default needs auto (what None means)"


def test_validate_refuses_what_lies_outside_a_range():
    for name in FIELDS:
        flag = flag_of(name)
        outside = [v for v in (flag.min - 1 if flag.min is not None else None,
                               flag.max + 1 if flag.max is not None else None,
                               flag.min if flag.min_open else None, flag.max if flag.max_open else None)
                   if v is not None]
        if flag.choices:
            outside.append("no such choice" if isinstance(flag.choices[0], str) else max(flag.choices) + 1)
        for value in outside:
            with pytest.raises(ValueError, match=name.replace("_", " ")):
                Settings(**{name: value}).validate()
    Settings().validate()


# The CLI -------------------------------------------------------------------------------------
def _actions(parser) -> dict:
    found = {}
    for group in parser._action_groups:
        for a in group._group_actions:
            for s in a.option_strings:
                found[s] = (a, group.title)
    return found


def test_cli_has_each_field_with_its_default_choices_and_group():
    actions = _actions(optimize.build_parser())
    for f in fields(Settings):
        flag, name = flag_of(f.name), cli_flag(f.name)
        if name is None:
            assert flag.set_by in actions, f"{f.name}: set by {flag.set_by}, which the CLI lacks"
            continue
        assert name in actions, f"Settings.{f.name} has no CLI flag {name}"
        action, group = actions[name]
        assert action.dest == f.name, name
        assert group == GROUP_OF[flag.category], f"{name} is in the group {group!r}, its category is {flag.category}"
        if flag.auto_mode:  # --lit [auto|on|off] and --no-lit, auto by default
            assert (action.default, action.choices, action.const) == ("auto", MODES, "on"), name
            assert action.option_strings == [name, "--no-" + name[2:]], name
            assert flag.help.replace("%", "%%") in action.help and flag.auto_mode in action.help, name
            continue
        assert action.default == (None if flag.preset else f.default), f"{name}: default {action.default!r}"
        assert action.choices == flag.choices, f"{name}: choices {action.choices}"
        assert isinstance(action, argparse.BooleanOptionalAction) == (f.type == "bool"), name
        assert flag.help.replace("%", "%%") in action.help, f"{name}'s help is not its Flag's"


def test_cli_defaults_give_the_default_settings():
    args = optimize.build_parser().parse_args(["--object", "A", "--cameras", "B"])
    assert optimize.settings_from_args(args) == Settings()  # --quality standard, a joint fit
    choices = optimize.choices_from_args(args)  # lit and the normal map left to the scene, steps to the fit
    assert (choices.lit, choices.fit_normal, choices.steps_preset) == ("auto", "auto", "standard")


@pytest.mark.parametrize("argv, lit, normal", [([], "auto", "auto"), (["--lit"], "on", "auto"),
                                               (["--lit", "off"], "off", "auto"), (["--no-lit"], "off", "auto"),
                                               (["--lit", "auto", "--fit-normal"], "auto", "on"),
                                               (["--no-fit-normal", "--steps", "9"], "auto", "off")])
def test_cli_lit_and_normal_map_modes(argv, lit, normal):
    args = optimize.build_parser().parse_args(["--object", "A", "--cameras", "B"] + argv)
    choices = optimize.choices_from_args(args)
    assert (choices.lit, choices.fit_normal) == (lit, normal)
    assert choices.steps_preset == (None if "--steps" in argv else "standard")
    s = optimize.settings_from_args(args)
    assert (s.lit, s.optimize_normal) == (lit == "on", normal == "on")


def test_cli_flags_reach_settings():
    argv = ["--object", "A", "--cameras", "B", "--optimize", "texture", "--steps", "7", "--lr-positions", "0.01",
            "--fit-roughness", "--lit", "--no-sart-visits", "--texture-strata", "1", "--beta1", "0.5",
            "--workbench-samples", "16", "--estimator", "full_image", "--check-every", "3"]
    s = optimize.settings_from_args(optimize.build_parser().parse_args(argv))
    assert (s.optimize_positions, s.optimize_texture, s.steps, s.lr_positions, s.optimize_roughness, s.lit,
            s.sart_visits, s.texture_strata, s.beta1, s.workbench_samples, s.estimator, s.check_every) == \
        (False, True, 7, 0.01, True, True, False, 1, 0.5, 16, "full_image", 3)


# The panel -----------------------------------------------------------------------------------
def _panel() -> dict:
    """The panel's property keywords for each Settings field it shows."""
    from sge_optimizer.addon import properties

    cls, found = properties.SGE_PG_settings, {}
    for name in properties.PANEL_FIELDS:
        deferred = cls.__annotations__[name]
        if isinstance(deferred, str):  # `from __future__ import annotations`: Blender evaluates them so
            deferred = eval(deferred, vars(properties))  # noqa: S307
        found[name] = deferred.keywords
    return found


def test_panel_properties_have_the_fields_defaults_and_ranges():
    panel = _panel()
    assert {"steps", "estimator", "texture_update", "lr_positions", "seed"} <= set(panel)
    for name, kw in panel.items():
        flag, default = flag_of(name), Settings.__dataclass_fields__[name].default
        if flag.auto_mode:  # Auto | On | Off, Auto by default
            assert tuple(i[0].lower() for i in kw["items"]) == MODES and kw["default"] == "AUTO", name
            assert kw["description"].lower().startswith(flag.help.lower()) and flag.auto_mode in kw["description"]
            continue
        if "items" in kw:
            assert tuple(i[0].lower() for i in kw["items"]) == flag.choices, name
            assert kw["default"].lower() == default, name
            continue
        assert kw["default"] == (0.0 if flag.auto else default), f"panel {name}: default {kw['default']!r}"
        assert kw["description"].lower().startswith(flag.help.lower()), f"panel {name}'s description"
        if isinstance(default, bool):
            continue
        low, high = kw.get("min"), kw.get("max")
        if flag.min is not None:
            assert low is not None and low >= flag.min, f"panel {name}: min {low}, the field's {flag.min}"
            if flag.min_open and not flag.auto:  # 0 is automatic where the field has auto
                assert low > flag.min, f"panel {name}: min {low} lies outside {flag.range_text()}"
        if flag.max is not None and not flag.max_open:
            assert high is not None and high <= flag.max, f"panel {name}: max {high}, the field's {flag.max}"
        assert kw.get("soft_max") == (flag.soft_max or kw.get("soft_max")), name


def test_panel_defaults_give_the_default_settings():
    from sge_optimizer.addon import properties

    props = SimpleNamespace(**{name: kw["default"] for name, kw in _panel().items()}, quality="STANDARD")
    assert properties.to_settings(props) == Settings()
    choices = properties.choices(props)
    assert (choices.lit, choices.fit_normal, choices.steps_preset) == ("auto", "auto", "standard")
    assert (properties.choices(props, lit=True, steps=5).lit, properties.choices(props, steps=5).steps_preset) == \
        ("on", None)
    props.lr_texture, props.texture_update, props.optimize_roughness = 1.2, "ADAM", True
    assert properties.to_settings(props).optimize_roughness  # lit on Auto: the run decides
    props.lit = "OFF"  # roughness: not lit
    s = properties.to_settings(props)
    assert (s.lr_texture, s.texture_update, s.optimize_roughness) == (1.2, "adam", False)


if __name__ == "__main__":
    CLI_DOC.parent.mkdir(exist_ok=True)
    CLI_DOC.write_text(cli_reference_markdown(), encoding="utf-8")
    print(f"wrote {CLI_DOC.relative_to(ROOT)}")

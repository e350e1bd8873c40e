"""The public API is exactly what pyplantd/__init__.py exports."""

import pyplantd

EXPECTED = {
    "ConfigBase",
    "ConfigValue",
    "Ingredient",
    "IngredientNotFoundError",
    "IngredientTypeSpec",
    "InvalidOperationException",
    "Pipework",
    "Plant",
    "PlantError",
    "ReactorFailedError",
    "ReactorFunc",
    "ReactorNotFoundError",
    "SubreactorFunc",
    "Warehouse",
    "open_plant",
    "pyplant",
    "specs",
    "test",
    "utils",
}


def test_all_is_pinned():
    assert set(pyplantd.__all__) == EXPECTED


def test_everything_in_all_is_importable():
    for name in pyplantd.__all__:
        assert getattr(pyplantd, name) is not None


def test_pyplant_names_are_kept():
    plant_api = {"run_reactor", "set_config", "mark_params_as_auxiliary", "add_reactors",
                 "fetch_ingredient", "add_event_listener", "get_execution_history",
                 "print_execution_history"}  # fmt: skip
    assert plant_api <= set(dir(pyplantd.Plant))
    assert {"receive", "send", "allocate", "read_config"} <= set(dir(pyplantd.Pipework))
    assert {t.value for t in pyplantd.Ingredient.Type} == {
        "simple", "list", "object", "array", "file", "hdf_array",
    }  # fmt: skip
    assert {"reactor_started", "reactor_finished", "subreactor_started", "reactor_failed"} <= {
        e.value for e in pyplantd.Plant.EventType
    }

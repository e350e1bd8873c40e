"""Garbage collection during a run: what existed before the run is frozen (a full collection
would walk it for nothing) and unfrozen after, so earlier garbage is still collected; a host that
freezes objects itself (the daemon) says so and keeps its own freeze."""

from __future__ import annotations

import gc

from pyplantd import Ingredient, Plant, ReactorFunc

seen_during_run: list[int] = []


@ReactorFunc
def count(pipe):
    seen_during_run.append(gc.get_freeze_count())
    pipe.send("n", 1, Ingredient.Type.object)


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_a_run_freezes_what_existed_before_it_and_unfreezes_after(tmp_path) -> None:
    seen_during_run.clear()
    gc.unfreeze()
    with Plant(tmp_path / "plant") as plant:
        plant.run_reactor(count)
    assert seen_during_run and seen_during_run[0] > 0
    assert gc.get_freeze_count() == 0
    Cycle()  # garbage made before the next run is still collected
    assert gc.collect() > 0


def test_a_freeze_made_by_the_host_is_left_as_it_was(tmp_path) -> None:
    seen_during_run.clear()
    with Plant(tmp_path / "plant") as plant:
        gc.freeze()
        try:
            plant.run_reactors([count], freeze_older_objects=False)
            assert gc.get_freeze_count() > 0  # a run that froze and unfroze would leave none
        finally:
            gc.unfreeze()

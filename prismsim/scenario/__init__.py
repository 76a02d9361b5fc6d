"""Scenario files: ``schema`` (the strict YAML schema), ``grid`` (points), ``load``
(reading and checking, :class:`LoadedScenario`)."""

from prismsim.scenario.grid import Point
from prismsim.scenario.load import LoadedScenario, load_scenario
from prismsim.scenario.schema import ScenarioError

__all__ = ["LoadedScenario", "Point", "ScenarioError", "load_scenario"]

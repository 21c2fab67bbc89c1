"""The guard properties a user task may carry are checked when its diagram is deployed
(engine.task_guards.property_problems): a malformed one is refused, naming the property."""
from __future__ import annotations

import pytest

from engine.task_guards import property_problems

SHIPPED = {
    "materialsCompleteWhen": "acceptance_decision=accept",
    "correctionItemsField": "correction_items",
    "pauseBudget": "special_procedure_days:promised:special_procedure:60",
    "pauseBudgetWhen": "handling_action=special_procedure",
    "datesSinceDeclaration": "document_date",
}


def test_the_shipped_guard_properties_are_well_formed():
    assert property_problems(SHIPPED) == []
    assert property_problems({}) == []


@pytest.mark.parametrize("properties,named", [
    ({"materialsCompleteWhen": "acceptance_decision"}, "materialsCompleteWhen"),
    ({"correctionItemsField": "correction items"}, "correctionItemsField"),
    ({"pauseBudget": "special_procedure_days:promised:60", "pauseBudgetWhen": "a=b"}, "pauseBudget must be"),
    ({"pauseBudget": "days:promised:special_procedure:0", "pauseBudgetWhen": "a=b"}, "pauseBudget must be"),
    ({"pauseBudget": "days:promised:special_procedure:60"}, "pauseBudgetWhen"),
    ({"pauseBudgetWhen": "handling_action=special_procedure"}, "pauseBudgetWhen"),
    ({"pauseBudget": "days:promised:special_procedure:60", "pauseBudgetWhen": "handling_action"}, "pauseBudgetWhen"),
    ({"datesSinceDeclaration": "document_date,"}, "datesSinceDeclaration"),
    ({"datesSinceDeclaration": "document date"}, "datesSinceDeclaration"),
])
def test_a_malformed_guard_property_is_refused_by_name(properties, named):
    problems = property_problems(properties)
    assert problems and any(named in p for p in problems), problems

"""The segment formula language: text ⇄ condition tree (docs/formula.md)."""

from models.formula.errors import FormulaError
from models.formula.formatter import format_condition
from models.formula.parser import parse_formula

__all__ = ["FormulaError", "format_condition", "parse_formula"]

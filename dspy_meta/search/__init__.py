"""The meta search: strategies propose (ask/tell), one evaluator runs, scores and judges."""

from dspy_meta.search.acceptance import AcceptanceRule, ImprovesOnBest, PairedSignTest
from dspy_meta.search.budget import AUTO_BUDGETS, MetaBudget
from dspy_meta.search.candidates import Candidate, Rejection
from dspy_meta.search.evaluator import Evaluator
from dspy_meta.search.proposals import Proposal, Proposer
from dspy_meta.search.results import CandidateRecord, MetaResults
from dspy_meta.search.screening import Screen, screening_bound
from dspy_meta.search.strategies import PromptSearch, SearchStrategy, StructureSearch

__all__ = ["AcceptanceRule", "ImprovesOnBest", "PairedSignTest", "AUTO_BUDGETS", "MetaBudget", "Candidate",
           "Rejection", "Evaluator", "Proposal", "Proposer", "CandidateRecord", "MetaResults", "Screen", "screening_bound",
           "PromptSearch", "SearchStrategy", "StructureSearch"]

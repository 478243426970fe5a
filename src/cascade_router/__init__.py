"""cascade-router: answer with a small language model (SLM) first and escalate to a large one (LLM)
only when the SLM's own confidence signals say it is unsure."""

__version__ = "0.1.0"

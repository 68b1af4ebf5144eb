"""LLM rewriting (SwallowCode SGCR/SCOR, SwallowMath): prompts as data and pure response parsers, no model code."""

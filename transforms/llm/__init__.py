"""LLM rewriting (SwallowCode SGCR/SCOR, SwallowMath): prompts, response parsers, model backends, the generation cache."""

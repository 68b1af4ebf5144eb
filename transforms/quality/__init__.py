"""Model-based quality: a fastText classifier scores documents; BETR and DCLM recipes train one."""

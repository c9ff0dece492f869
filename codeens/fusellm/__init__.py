"""Knowledge fusion (FuseLLM): train a target model on fused source distributions."""

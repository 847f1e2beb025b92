"""Config validation: the structured schemas of the primary configs and the OmegaConf resolvers they use."""

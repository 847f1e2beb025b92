"""The bodies of the five commands, one module each: train (gan-train), sample (gan-sample), translate
(gan-translate), evaluate (gan-eval) and blend (gan-blend). gan_cli.cli holds their Hydra entry points."""

"""`python -m gan_cli ...` works like `gan-train ...` (and lets Lightning's DDP launcher re-run the command)."""

from gan_cli.cli import train_main

if __name__ == "__main__":
    train_main()

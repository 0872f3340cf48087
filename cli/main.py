"""gencodec command line (placeholder, replaced by the full CLI)."""
import click


@click.group()
def cli():
    """gencodec: learned and classical compression."""


def main():
    cli()

"""`python -m tt_deploy.cli`: the same entry as the `ttdeploy` console script."""

from tt_deploy.cli import main

main()

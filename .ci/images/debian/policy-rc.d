#!/bin/sh
# Packages must not try to start services while an image is being built
# (there is no init system in a container); same as Debian's Docker images.
exit 101

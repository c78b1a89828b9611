#!/usr/bin/env bash
# Here, before a GPU session: the packages the device's image lacks, as CPython 3.12 wheels, into .whl (ignored by
# git, carried by the device tool). The image (the device tool's KINDS.md) has Python 3.12.3, torch 2.11.0,
# transformers 5.17.0, accelerate 1.15.0, numpy 2.5.2, huggingface_hub 1.33.0, safetensors 0.8.0, opencv, einops,
# imageio, jinja2, tqdm, pyyaml, pillow and zipp; it lacks diffusers and av, and importlib_metadata (diffusers
# needs it; 8.7.0 is the last that needs nothing the image lacks). Run from the repository root:
#     bash scripts/gpu_prepare.sh
# then, with the device tool: run command="bash scripts/gpu_session.sh" carry=[".whl"] timeout_s=600
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/p' "$0" | grep '^#' | cut -c3-; exit 0 ;; esac
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
rm -rf .whl
mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    diffusers==0.42.1 av==18.1.0 importlib_metadata==8.7.0
total=$(du -cb .whl/*.whl | tail -1 | cut -f1)
ls -l .whl
echo "wheels: $((total / 1048576)) MiB (the device tool carries 64 MiB a call, the repository included)"
test "$total" -lt $((56 * 1048576)) || { echo "too large to carry beside the repository" >&2; exit 1; }

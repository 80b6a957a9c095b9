#!/bin/bash
# usage (GPU machine, project root): bash .gpu/kit/run.sh project|vllm  -- an example harness; adapt bench.py to the code as it is.
REPO=$(pwd)
export REPO PYTHONPATH=/tmp/site:$REPO/server:$REPO/operator:$REPO/devtools
export MODEL=$REPO/.gpu/kit/model/Qwen2-VL-7B-Instruct MEDIA=/tmp/media VIDEOMODEL_CACHE=/tmp/vcache PYTHONUNBUFFERED=1
export VLLM_USE_FLASHINFER_SAMPLER=0   # flashinfer is not in the payload; vLLM's image has it
mkdir -p $MEDIA
for v in sq720_120s.mp4 hd1280_120s.mp4; do
  [ -f $MEDIA/$v ] || (python3 .gpu/kit/gen_videos.py $v >> $OUT/run.log 2>&1 &)
done
if [ "$1" = project ]; then
  # Decode workers refused every video (MemoryError under RLIMIT_AS 3 GiB, 422 video_decode_memory) on this machine.
  mkdir -p /tmp/nocv2 && echo 'raise ImportError("cv2 hidden for the diagnosis")' > /tmp/nocv2/cv2.py
  D3=$(python3 .gpu/kit/decode_diag.py 0 3 2>>$OUT/diag.log | grep DIAG); echo "$D3" | tee -a $OUT/run.log
  D16=$(python3 .gpu/kit/decode_diag.py 0 16 2>>$OUT/diag.log | grep DIAG); echo "$D16" | tee -a $OUT/run.log
  PYTHONPATH=/tmp/nocv2:$PYTHONPATH python3 .gpu/kit/decode_diag.py 0 3 2>>$OUT/diag.log | grep DIAG | tee -a $OUT/run.log
  python3 .gpu/kit/decode_diag.py 1 3 2>>$OUT/diag.log | grep DIAG | tee -a $OUT/run.log
  if ! echo "$D3" | grep -q ": ok" && echo "$D16" | grep -q ": ok"; then
    export DECODE_MEMORY_GIB=16; echo "project server runs with decode_memory_bytes = 16 GiB" | tee -a $OUT/run.log
  fi
fi
python3 .gpu/kit/bench.py $1 2>&1 | tee -a $OUT/run.log

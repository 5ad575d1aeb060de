"""A real PEFT load of an adapter this project wrote (issue 18): transformers loads the
converted stories260K base, PeftModel.from_pretrained the adapter, and the mean NLL of a
held-out text (BOS first, one window, as `qlora eval`) is compared with ours, written by
peftCase.ts on the CPU machine. Prints one JSON object; exit 1 when they disagree.
    python3 peft_check.py CASE_DIR [--device cuda]
"""
import argparse, json, math, sys

import torch
from transformers import AutoTokenizer, LlamaForCausalLM
from peft import PeftModel

p = argparse.ArgumentParser()
p.add_argument('case')
p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
p.add_argument('--tolerance', type=float, default=1e-4)
a = p.parse_args()

ours = json.load(open(f'{a.case}/ours.json'))
tok = AutoTokenizer.from_pretrained(f'{a.case}/base')
text = open(f'{a.case}/heldout.txt').read()
ids = tok(text, add_special_tokens=False)['input_ids']
ids = [tok.bos_token_id] + ids
torch.backends.cuda.matmul.allow_tf32 = False


def mean_nll(model):
    x = torch.tensor([ids], device=a.device)
    with torch.no_grad():
        logits = model(x).logits.float()[0, :-1]
    return torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction='mean').item()


base = LlamaForCausalLM.from_pretrained(f'{a.case}/base', torch_dtype=torch.float32).to(a.device).eval()
base_nll = mean_nll(base)
peft_model = PeftModel.from_pretrained(base, f'{a.case}/run/adapter').to(a.device).eval()
adapter_nll = mean_nll(peft_model)
result = {
    'tokens': len(ids) - 1, 'oursTokens': ours['adapter']['tokens'],
    'base': {'peft': base_nll, 'ours': ours['base']['loss']},
    'adapter': {'peft': adapter_nll, 'ours': ours['adapter']['loss']},
}
rel = lambda x, y: abs(x - y) / max(abs(y), 1e-12)
result['relativeDifference'] = {'base': rel(base_nll, ours['base']['loss']), 'adapter': rel(adapter_nll, ours['adapter']['loss'])}
result['adapterChangedTheModel'] = abs(adapter_nll - base_nll) > 1e-3
result['ok'] = (result['tokens'] == result['oursTokens'] and result['adapterChangedTheModel']
                and all(v <= a.tolerance for v in result['relativeDifference'].values()))
print(json.dumps(result))
sys.exit(0 if result['ok'] else 1)

// An Ollama Modelfile for exported GGUF files. Ollama's TEMPLATE is a Go template, not the
// model's Jinja chat template; the chat formats recognised here are written out as Go
// templates, with their end-of-turn tokens as stop parameters. A model without a chat
// template completes raw text; an unrecognised one is left to Ollama, which reads
// tokenizer.chat_template from the GGUF itself, and the file says so.

const CHATML = `{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
`;

const LLAMA3 = `{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>{{ end }}{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>

`;

export interface ModelfileOptions {
  /** File names relative to the Modelfile. */
  model: string;
  adapter?: string;
  chatTemplate?: string;
  source: string;
}

export function modelfile(o: ModelfileOptions): string {
  const lines = [`# Written by qlora export ollama from ${o.source}.`, `# Create the model with: ollama create NAME -f Modelfile`, `FROM ./${o.model}`];
  if (o.adapter) lines.push(`ADAPTER ./${o.adapter}`);
  const t = o.chatTemplate;
  if (!t) {
    lines.push('# The model has no chat template: it completes the prompt as written.', 'TEMPLATE """{{ .Prompt }}"""');
  } else if (t.includes('<|im_start|>')) {
    lines.push(`TEMPLATE """${CHATML}"""`, 'PARAMETER stop "<|im_end|>"');
  } else if (t.includes('<|start_header_id|>')) {
    lines.push(`TEMPLATE """${LLAMA3}"""`, 'PARAMETER stop "<|eot_id|>"');
  } else {
    lines.push('# The chat template is not one this export writes as a Go template; Ollama takes it from the GGUF (tokenizer.chat_template).');
  }
  return lines.join('\n') + '\n';
}

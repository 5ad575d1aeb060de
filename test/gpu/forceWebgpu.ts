// Forces backend 'webgpu' in a process of its own and prints, as one JSON line, what
// initBackend answered: {"device": ...} or {"error": name, "message": ...}. For the test
// of the refusal, which needs an environment where Dawn cannot start.
import { initBackend } from '../../server/engine/backend';

initBackend('webgpu').then(
  (info) => { console.log(JSON.stringify({ device: info.device })); process.exit(0); },
  (e: Error) => { console.log(JSON.stringify({ error: e.constructor.name, message: e.message })); process.exit(0); },
);

/**
 * The completion scripts in the real shells: bash loads the script and its completion function, found
 * through `complete -p warren`, answers for a COMP_WORDS line as it would at a prompt; fish answers
 * `complete -C`; zsh parses the script (`zsh -n`) and, loaded with compinit and bashcompinit, answers
 * the same COMP_WORDS line under the sh emulation bashcompinit runs bash functions with.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { buildProgram } from './program.js';
import { completionScript, completionTree } from './completion.js';
import { loadDeferredOptions } from './conventions.js';

// The tree `warren completion` walks: every command's flags, `warren hub`'s and `warren agent`'s too.
const program = buildProgram();
await loadDeferredOptions(program);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-completion-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function scriptFile(shell: 'bash' | 'zsh' | 'fish'): string {
  const file = path.join(dir, `warren.${shell}`);
  fs.writeFileSync(file, completionScript(program, shell));
  return file;
}

/** What bash offers after `line` (the last word is the one being completed), sorted. */
function bashComplete(file: string, line: string): string[] {
  const words = line.split(' ');
  const script = `
source ${JSON.stringify(file)} || exit 3
fn=$(complete -p warren | sed -E 's/.* -F ([^ ]+) .*/\\1/')
[[ -n $fn ]] || exit 4
COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(' ')})
COMP_CWORD=${words.length - 1}
COMP_LINE=${JSON.stringify(line)}
COMP_POINT=\${#COMP_LINE}
COMPREPLY=()
"$fn" warren "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "\${COMPREPLY[@]}"
`;
  return execFileSync('bash', ['--norc', '--noprofile', '-c', script], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
}

test('bash: the script loads, registers for warren, and completes nouns, aliases, verbs, flags and flag values', () => {
  const file = scriptFile('bash');
  assert.match(execFileSync('bash', ['--norc', '-c', `source ${JSON.stringify(file)}; complete -p warren`], { encoding: 'utf8' }), /^complete -o default -F _warren warren\n$/);
  assert.deepEqual(bashComplete(file, 'warren ag'), ['agent', 'agents']);
  assert.deepEqual(bashComplete(file, 'warren agen'), ['agent', 'agents']);
  assert.deepEqual(bashComplete(file, 'warren agents r'), ['rm']);
  assert.deepEqual(bashComplete(file, 'warren token cr'), ['create'], 'the singular alias leads to the same verbs');
  assert.deepEqual(bashComplete(file, 'warren tokens create --us'), ['--user']);
  assert.deepEqual(bashComplete(file, 'warren grants ls -o '), ['json', 'table', 'yaml']);
  assert.deepEqual(bashComplete(file, 'warren hub --max-hand'), ['--max-handshakes'], 'a flag from the hub\'s option specs, added before the tree is walked');
  assert.deepEqual(bashComplete(file, 'warren completion '), [], 'an argument, not a command: nothing to offer');
  assert.ok(bashComplete(file, 'warren --').includes('--version'));
});

/** What fish offers after `line`, sorted. */
function fishComplete(file: string, line: string): string[] {
  return execFileSync('fish', ['--no-config', '-c', `source ${JSON.stringify(file)}; complete -C${JSON.stringify(line)}`], { encoding: 'utf8' })
    .split('\n').filter(Boolean).map((l) => l.split('\t')[0]!).sort();
}

/** What zsh offers after `line` through the bash function, called as bashcompinit's compgen -F calls it. */
function zshComplete(file: string, line: string): string[] {
  const words = line.split(' ');
  const script = `
source ${JSON.stringify(file)} || exit 3
emulate -L sh
setopt kshglob noshglob braceexpand
COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(' ')})
COMP_CWORD=${words.length - 1}
COMPREPLY=()
_warren warren "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "\${COMPREPLY[@]}"
`;
  return execFileSync('zsh', ['-f', '-c', script], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
}

test('every noun with verbs, by its name and by each alias, offers its verbs, alike in bash, zsh and fish', () => {
  const [bash, zsh, fish] = [scriptFile('bash'), scriptFile('zsh'), scriptFile('fish')];
  const tree = completionTree(program);
  const byPath = new Map(tree.map((n) => [n.path, n]));
  const nouns = tree[0]!.children.filter((c) => byPath.get(c.path)!.children.length > 0);
  assert.ok(nouns.some((c) => c.word === 'agent'), 'agent has verbs (install, manifest)');
  assert.ok(nouns.some((c) => c.word === 'token') && nouns.some((c) => c.word === 'tokens'), 'singular and plural both listed');
  for (const { word, path: to } of nouns) {
    const verbs = [...new Set(byPath.get(to)!.children.map((c) => c.word))].sort();
    const line = `warren ${word} `;
    assert.deepEqual(bashComplete(bash, line), verbs, `bash: ${line}`);
    assert.deepEqual(zshComplete(zsh, line), verbs, `zsh: ${line}`);
    assert.deepEqual(fishComplete(fish, line), verbs, `fish: ${line}`);
  }
  assert.deepEqual(bashComplete(bash, 'warren agent '), ['install', 'manifest']);
});

test('fish: the script loads and completes the same way', () => {
  const file = scriptFile('fish');
  const complete = (line: string) => fishComplete(file, line);
  assert.deepEqual(complete('warren ag'), ['agent', 'agents']);
  assert.deepEqual(complete('warren token cr'), ['create']);
  assert.deepEqual(complete('warren tokens create --us'), ['--user']);
  assert.deepEqual(complete('warren grants ls -o '), ['json', 'table', 'yaml']);
});

test('zsh: the script parses', () => {
  execFileSync('zsh', ['-n', scriptFile('zsh')]);
});

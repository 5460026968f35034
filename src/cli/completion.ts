/**
 * Shell completion scripts for `warren completion bash|zsh|fish`, generated from the command tree
 * itself, so a command, alias or flag added later completes without touching this file.
 *
 * Each script finds where the words typed so far lead in the tree (a path like `warren/tokens/create`;
 * words that are no command, such as arguments and flag values, leave it where it is), then offers that
 * command's subcommands and aliases, its flags after a `-`, or a flag's choices after the flag
 * (`-o` → table json yaml). zsh runs the bash script through bashcompinit.
 */
import type { Command, Option } from 'commander';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

interface Flag {
  readonly long: string | undefined;
  readonly short: string | undefined;
  readonly takesValue: boolean;
  readonly choices: readonly string[];
  readonly description: string;
}

interface Node {
  /** `warren`, `warren/tokens`, `warren/tokens/create`. */
  readonly path: string;
  /** Every word that leads one level down (names and aliases), with where it leads. */
  readonly children: ReadonlyArray<{ readonly word: string; readonly path: string; readonly description: string }>;
  readonly flags: readonly Flag[];
}

/** The first sentence of a description, short enough for a completion menu. */
function summary(text: string): string {
  const first = text.split(/(?<=\.)\s|\n/)[0] ?? '';
  return first.length > 70 ? `${first.slice(0, 69)}…` : first;
}

function flagOf(o: Option): Flag {
  return { long: o.long, short: o.short, takesValue: o.required || o.optional, choices: o.argChoices ?? [], description: summary(o.description) };
}

const HELP: Flag = { long: '--help', short: '-h', takesValue: false, choices: [], description: 'display help for command' };
const VERSION: Flag = { long: '--version', short: '-v', takesValue: false, choices: [], description: 'output the version number' };

/** The command tree as completion sees it, root first. */
export function completionTree(program: Command): Node[] {
  const nodes: Node[] = [];
  const visit = (cmd: Command, path: string): void => {
    const visible = cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
    nodes.push({
      path,
      children: visible.flatMap((c) => [c.name(), ...c.aliases()].map((word) => ({ word, path: `${path}/${c.name()}`, description: summary(c.description()) }))),
      flags: [...cmd.options.filter((o) => !o.hidden && o.long !== '--version').map(flagOf), HELP, ...(path === program.name() ? [VERSION] : [])],
    });
    for (const c of visible) visit(c, `${path}/${c.name()}`);
  };
  visit(program, program.name());
  return nodes;
}

/** Single-quoted for bash and zsh. */
function sq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Single-quoted for fish (backslash and quote escaped inside). */
function fq(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function flagWords(f: Flag): string[] {
  return [f.long, f.short].filter((w): w is string => w !== undefined);
}

function bashScript(name: string, nodes: readonly Node[]): string {
  const fn = `_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const steps = nodes.flatMap((n) => n.children.map((c) => `      ${sq(`${n.path}|${c.word}`)}) path=${sq(c.path)} ;;`));
  const offers = nodes.map((n) => `    ${sq(n.path)}) words=${sq(n.children.map((c) => c.word).join(' '))}; flags=${sq(n.flags.flatMap(flagWords).join(' '))} ;;`);
  const choices = nodes.flatMap((n) => n.flags.filter((f) => f.choices.length).flatMap((f) => flagWords(f).map((w) => `    ${sq(`${n.path}|${w}`)}) COMPREPLY=($(compgen -W ${sq(f.choices.join(' '))} -- "$cur")); return ;;`)));
  return `# ${name} completion for bash. Load it in this shell:  source <(${name} completion bash)
# or for every shell:  ${name} completion bash > ~/.local/share/bash-completion/completions/${name}
${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" path=${sq(name)} i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "$path|\${COMP_WORDS[i]}" in
${steps.join('\n')}
    esac
  done
  ((COMP_CWORD > 1)) && prev="\${COMP_WORDS[COMP_CWORD - 1]}"
  case "$path|$prev" in
${choices.join('\n')}
  esac
  local words="" flags=""
  case "$path" in
${offers.join('\n')}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  fi
}
complete -o default -F ${fn} ${name}
`;
}

function zshScript(name: string, nodes: readonly Node[]): string {
  return `# ${name} completion for zsh. Load it in this shell:  source <(${name} completion zsh)
# (the bash completion, run by zsh's bashcompinit)
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bashScript(name, nodes).split('\n').filter((l) => !l.startsWith('#')).join('\n')}`;
}

function fishScript(name: string, nodes: readonly Node[]): string {
  const fn = `__${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const steps = nodes.flatMap((n) => n.children.map((c) => `            case ${fq(`${n.path}|${c.word}`)}\n                set path ${fq(c.path)}`));
  const lines: string[] = [];
  for (const n of nodes) {
    const at = `-n ${fq(`${fn}_at ${n.path}`)}`;
    for (const c of n.children) lines.push(`complete -c ${name} ${at} -a ${fq(c.word)} -d ${fq(c.description)}`);
    for (const f of n.flags) {
      const parts = [`complete -c ${name} ${at}`];
      if (f.long) parts.push(`-l ${f.long.replace(/^--/, '')}`);
      if (f.short && f.short.length === 2) parts.push(`-s ${f.short.slice(1)}`);
      if (f.takesValue) parts.push('-r');
      if (f.choices.length) parts.push(`-f -a ${fq(f.choices.join(' '))}`);
      else if (f.takesValue) parts.push('-F');
      parts.push(`-d ${fq(f.description)}`);
      lines.push(parts.join(' '));
    }
  }
  return `# ${name} completion for fish. Load it in this shell:  ${name} completion fish | source
# or for every shell:  ${name} completion fish > ~/.config/fish/completions/${name}.fish
function ${fn}_path
    set -l path ${fq(name)}
    for w in (commandline -opc)[2..-1]
        switch "$path|$w"
${steps.join('\n')}
        end
    end
    echo $path
end
function ${fn}_at
    test (${fn}_path) = $argv[1]
end
complete -c ${name} -e
complete -c ${name} -f
${lines.join('\n')}
`;
}

/** The completion script for `shell`, for the program's tree under the program's name. */
export function completionScript(program: Command, shell: Shell): string {
  const nodes = completionTree(program);
  const name = program.name();
  return shell === 'bash' ? bashScript(name, nodes) : shell === 'zsh' ? zshScript(name, nodes) : fishScript(name, nodes);
}

/** `warren completion bash|zsh|fish`: the shell completion script, generated from the command tree. */
import { Argument, type Command } from 'commander';
import { completionScript, SHELLS, type Shell } from '../completion.js';
import { examples, loadDeferredOptions } from '../conventions.js';

export function registerCompletion(program: Command): void {
  const cmd = program
    .command('completion')
    .description('Print the shell completion script for bash, zsh or fish: commands, aliases and flags.')
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .action(async (shell: Shell) => {
      await loadDeferredOptions(program);
      process.stdout.write(completionScript(program, shell));
    });
  examples(cmd, [
    'source <(warren completion bash)                                  # this bash; add the line to ~/.bashrc to keep it',
    'warren completion bash | sudo tee /etc/bash_completion.d/warren   # every user, with the bash-completion package',
    'source <(warren completion zsh)                                   # in ~/.zshrc',
    'warren completion fish > ~/.config/fish/completions/warren.fish',
  ]);
}

// Lints the sources, tests, benchmarks and scripts with the types tsconfig.json gives them.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/'] },
  {
    files: ['src/**/*.ts', 'src/**/*.tsx', 'test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    extends: [tseslint.configs.strictTypeChecked],
    languageOptions: { parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      'no-duplicate-imports': 'error',
      // Ports, counts and byte sizes are numbers in nearly every log line and message.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      // node:test runs test() and describe() itself; awaiting them would serialise nothing.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] },
      ],
      // `return refuse(…)`, `return void s.close()` and `() => (clearTimeout(t), resolve())` are the house idiom for "do this and leave".
      '@typescript-eslint/no-confusing-void-expression': 'off',
      // Store, authenticator and route-handler implementations are `async` to honour a Promise interface: a throw becomes a rejection.
      '@typescript-eslint/require-await': 'off',
      // A caught error is passed on as it came, whatever was thrown.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true, allowThrowingAny: true }],
      // Merge patches and schema pruning delete keys of JSON documents by name; those objects are not maps.
      '@typescript-eslint/no-dynamic-delete': 'off',
      // noUncheckedIndexedAccess types every index read as optional; `!` marks the reads the code has bounded.
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    // Tests and their doubles read JSON and YAML bodies as `any` and assert on them: a wrong shape fails the
    // assertion. A variable set in before() is typed as set, yet after() must guard it (`await hub?.close()`)
    // for a before() that threw.
    files: ['**/*.test.ts', 'test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-base-to-string': 'off',
      '@typescript-eslint/no-unnecessary-condition': 'off',
    },
  },
  {
    // Plain .mjs files are outside tsconfig.json, so they get the rules that need no type information.
    files: ['test/**/*.mjs', 'scripts/**/*.mjs'],
    extends: [tseslint.configs.strict, tseslint.configs.disableTypeChecked],
  },
);

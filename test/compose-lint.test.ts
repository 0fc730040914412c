// The Compose files against the Compose Specification's JSON schema (as dclint ships it) plus dclint's
// rules that catch mistakes, and every Dockerfile under infra/ through dockerfile-utils, the linter
// behind the VS Code Docker extension, plus the few image rules berth holds to. All offline.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DCLinter } from 'dclint';
import { ValidationSeverity, validate } from 'dockerfile-utils';

const root = fileURLToPath(new URL('..', import.meta.url));
const COMPOSE_FILES = ['docker-compose.yml', 'docker-compose.test.yml'];

/** What dclint reports per message (its published types do not resolve under nodenext). */
interface LintMessage {
  rule: string;
  message: string;
  line: number;
}

function composeMessages(linter: DCLinter, path: string): LintMessage[] {
  const results = linter.lintFiles([path], false) as Array<{ messages: LintMessage[] }>;
  return results.flatMap((r) => r.messages);
}

/**
 * dclint with the rules that find mistakes on (schema, duplicate ports or names, build beside image,
 * unpinned images, unquoted ports) and the ordering rules off: the file
 * groups services by what they serve, not by name, and that is the order a reader wants.
 */
function composeLinter(overrideFile: boolean): DCLinter {
  return new DCLinter({
    rules: {
      'service-keys-order': 0,
      'services-alphabetical-order': 0,
      'service-dependencies-alphabetical-order': 0,
      'service-ports-alphabetical-order': 0,
      'top-level-properties-order': 0,
      'require-quotes-in-ports': [2, { quoteType: 'double' }],
      // an override file takes the project name from the file it extends
      'require-project-name-field': overrideFile ? 0 : 2,
      // the gateway is published on every interface by design; test/compose.test.ts checks that it is
      // the only such port and that pgAdmin's is bound to 127.0.0.1
      'no-unbound-port-interfaces': 0,
      'service-image-require-explicit-tag': 2,
      'no-build-and-image': 2,
      'no-duplicate-exported-ports': 2,
      'no-duplicate-container-names': 2,
      'no-version-field': 2,
      'no-quotes-in-volumes': 2,
    },
    quiet: false,
    debug: false,
    exclude: [],
  });
}

function lintCompose(file: string): string[] {
  const messages = composeMessages(composeLinter(file !== 'docker-compose.yml'), join(root, file));
  return messages.map((m) => `${file}:${m.line} ${m.rule}: ${m.message}`);
}

describe('Compose files', () => {
  for (const file of COMPOSE_FILES) {
    test(`${file} is valid against the Compose Specification and passes dclint`, () => {
      assert.deepEqual(lintCompose(file), []);
    });
  }

  test('a key the Compose Specification does not know fails the check', () => {
    const bad = join(root, 'test', 'fixtures', 'compose-unknown-key.yml');
    const messages = composeMessages(composeLinter(false), bad);
    assert.ok(
      messages.some((m) => m.rule === 'invalid-schema' && /additional properties/.test(m.message)),
      JSON.stringify(messages),
    );
  });
});

const dockerfiles = readdirSync(join(root, 'infra'), { recursive: true, encoding: 'utf8' })
  .filter((path) => /(^|\/)Dockerfile(\.[\w-]+)?$|\.Dockerfile$/.test(path))
  .map((path) => join('infra', path));

/** Rules dockerfile-utils leaves to other linters, checked here: each names what a reader should fix. */
function imageRules(text: string): string[] {
  const problems: string[] = [];
  const args = new Map([...text.matchAll(/^ARG (\w+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
  const stages = new Set([...text.matchAll(/^FROM \S+ AS (\S+)$/gim)].map((m) => m[1]?.toLowerCase()));
  for (const [, image] of text.matchAll(/^FROM (?:--platform=\S+ )?(\S+)/gm)) {
    const resolved = (image ?? '').replace(/^\$\{(\w+)\}$/, (_, name: string) => args.get(name) ?? image ?? '');
    if (stages.has(resolved.toLowerCase())) continue;
    if (!/:[\w.-]+$/.test(resolved) || /:latest$/.test(resolved)) problems.push(`FROM ${image}: pin a tag`);
  }
  if (/^ADD /m.test(text)) problems.push('ADD: use COPY for local files');
  if (/^RUN .*apk add(?!.*--no-cache)/m.test(text)) problems.push('apk add without --no-cache');
  if (/^RUN .*apt-get install(?!.*--no-install-recommends)/m.test(text)) {
    problems.push('apt-get install without --no-install-recommends');
  }
  for (const [line] of text.matchAll(/^(CMD|ENTRYPOINT) .*$/gm)) {
    if (!/^(CMD|ENTRYPOINT) \[/.test(line)) problems.push(`${line}: use the exec form so the process gets signals`);
  }
  // each final stage (the default one and any built with --target) runs as a named non-root user
  for (const stage of text.split(/^(?=FROM )/m).filter((part) => part.startsWith('FROM '))) {
    const user = [...stage.matchAll(/^USER (\S+)$/gm)].at(-1)?.[1];
    const runs = /^CMD /m.test(stage);
    if (runs && (!user || /^(root|0)(:|$)/.test(user))) problems.push(`${stage.split('\n')[0]}: set a non-root USER`);
  }
  return problems;
}

describe('Dockerfiles', () => {
  test('infra/ has the Dockerfile every service is built from', () => {
    assert.ok(dockerfiles.includes(join('infra', 'Dockerfile')), dockerfiles.join(', '));
  });

  for (const file of dockerfiles) {
    test(`${file} has no problems dockerfile-utils reports`, () => {
      const text = readFileSync(join(root, file), 'utf8');
      const error = ValidationSeverity.ERROR;
      const diagnostics = validate(text, {
        deprecatedMaintainer: error,
        directiveCasing: error,
        emptyContinuationLine: error,
        instructionCasing: error,
        instructionCmdMultiple: error,
        instructionEntrypointMultiple: error,
        instructionHealthcheckMultiple: error,
        instructionJSONInSingleQuotes: error,
        instructionWorkdirRelative: error,
      });
      assert.deepEqual(
        diagnostics.map((d) => `${file}:${d.range.start.line + 1} ${d.message}`),
        [],
      );
    });

    test(`${file} pins its base images, copies rather than adds, and runs as a non-root user`, () => {
      assert.deepEqual(imageRules(readFileSync(join(root, file), 'utf8')), []);
    });
  }

  test('the checks find what they are there for', () => {
    const broken = 'FROM node\nADD . /app\nCMD ["a"]\nCMD node x.js\nWORKDIR app\n';
    assert.ok(validate(broken).length >= 1, 'dockerfile-utils flags the second CMD');
    assert.deepEqual(imageRules(broken), [
      'FROM node: pin a tag',
      'ADD: use COPY for local files',
      'CMD node x.js: use the exec form so the process gets signals',
      'FROM node: set a non-root USER',
    ]);
  });
});

// infra/k8s/ offline: the kustomize base assembled the way kustomize's `resources:` does, every object
// validated against the Kubernetes schemas (kubernetes-models' validators for types, formats and
// required fields; its TypeScript interfaces, through tsc, for unknown fields), then what berth asks
// of each workload: probes, resources, a locked-down security context, env the code accepts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { assertEnvironmentFits, processEnvironments } from './helpers/env-schemas.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const base = join(root, 'infra', 'k8s');

// biome-ignore lint/suspicious/noExplicitAny: manifests are free-form YAML until validated
type Manifest = Record<string, any>;

/** The module of kubernetes-models that holds each apiVersion's models. */
const MODEL_MODULES: Record<string, string> = {
  v1: 'kubernetes-models/v1',
  'apps/v1': 'kubernetes-models/apps/v1',
  'batch/v1': 'kubernetes-models/batch/v1',
  'autoscaling/v2': 'kubernetes-models/autoscaling/v2',
  'networking.k8s.io/v1': 'kubernetes-models/networking.k8s.io/v1',
};

/** kustomization.yaml read as kustomize reads a base that only lists resources. */
function assemble(): { kustomization: Manifest; objects: Array<{ file: string; object: Manifest }> } {
  const kustomization = parse(readFileSync(join(base, 'kustomization.yaml'), 'utf8')) as Manifest;
  const objects: Array<{ file: string; object: Manifest }> = [];
  for (const file of kustomization.resources as string[]) {
    for (const doc of parseAllDocuments(readFileSync(join(base, file), 'utf8'))) {
      assert.deepEqual(doc.errors, [], `${file}: YAML errors`);
      const object = doc.toJS() as Manifest | null;
      if (object) objects.push({ file, object });
    }
  }
  return { kustomization, objects };
}

const { kustomization, objects } = assemble();
const byKind = (kind: string) => objects.map((o) => o.object).filter((o) => o.kind === kind);
const deployments = byKind('Deployment');
const configMap = byKind('ConfigMap').find((c) => c.metadata.name === 'berth-config') as Manifest;
const id = (o: Manifest) => `${o.kind}/${o.metadata?.name}`;

const scratch = mkdtempSync(join(root, 'node_modules', '.cache-k8s-check-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** The value each env entry resolves to: a literal, or a key of berth-config. */
function containerEnv(container: Manifest): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of container.env ?? []) {
    const ref = entry.valueFrom?.configMapKeyRef;
    if (ref) {
      assert.equal(ref.name, 'berth-config', `${entry.name}: a key of berth-config`);
      assert.ok(ref.key in configMap.data, `${entry.name}: berth-config has no "${ref.key}"`);
      env[entry.name] = configMap.data[ref.key];
    } else {
      env[entry.name] = String(entry.value);
    }
  }
  return env;
}

/** Which service directory and script a container runs: the image's name, the command's script. */
function entryPoint(container: Manifest): { dir: string | undefined; script: string } {
  const name = /^berth\/([a-z-]+):/.exec(container.image)?.[1] ?? '';
  const command: string[] = container.command ?? [];
  const script = command.slice(1).find((arg) => !arg.startsWith('-'));
  if (name === 'migrate') return { dir: undefined, script: 'scripts/migrate.ts' };
  return { dir: name, script: script ?? 'src/main.ts' };
}

describe('infra/k8s kustomize base', () => {
  test('lists only resources, so assembling them is what kustomize renders', () => {
    assert.deepEqual(Object.keys(kustomization).sort(), ['apiVersion', 'kind', 'resources']);
    assert.equal(kustomization.kind, 'Kustomization');
    const names = objects.map((o) => id(o.object));
    assert.equal(new Set(names).size, names.length, `duplicate objects: ${names.join(', ')}`);
  });

  test('has the workloads, the migrate Job, autoscalers, config, secret and the shared images volume', () => {
    const names = objects.map((o) => id(o.object));
    for (const name of ['gateway', 'counter', 'jokes', 'images', 'images-worker']) {
      assert.ok(names.includes(`Deployment/${name}`), `Deployment/${name}`);
    }
    for (const name of ['gateway', 'counter', 'jokes', 'images-worker']) {
      assert.ok(names.includes(`HorizontalPodAutoscaler/${name}`), `HorizontalPodAutoscaler/${name}`);
    }
    for (const name of ['gateway', 'counter', 'jokes', 'images']) assert.ok(names.includes(`Service/${name}`));
    assert.ok(names.includes('Job/berth-migrate'));
    assert.ok(names.includes('ConfigMap/berth-config'));
    assert.ok(names.includes('Secret/berth-secrets'));
    const claim = byKind('PersistentVolumeClaim').find((c) => c.metadata.name === 'images-data');
    assert.deepEqual(claim?.spec.accessModes, ['ReadWriteMany']);
  });

  test('every object passes the Kubernetes schema validators', async () => {
    for (const { file, object } of objects) {
      const module = MODEL_MODULES[object.apiVersion];
      assert.ok(module, `${file}: ${id(object)} has apiVersion "${object.apiVersion}" no validator is set up for`);
      const Model = ((await import(module)) as Record<string, new (data: Manifest) => { validate(): void }>)[
        object.kind
      ];
      assert.ok(Model, `${file}: ${object.apiVersion} has no kind "${object.kind}"`);
      assert.doesNotThrow(() => new Model(object).validate(), `${file}: ${id(object)}`);
    }
  });

  /** Type-checks each object as an object literal of its kind's interface; the compiler's messages. */
  function typeCheck(list: Array<{ file: string; object: Manifest }>): string[] {
    const imports = new Set<string>();
    const lines = list.map(({ file, object }, i) => {
      imports.add(`import type { I${object.kind} } from '${MODEL_MODULES[object.apiVersion]}/${object.kind}';`);
      return `// ${file}: ${id(object)}\nexport const m${i}: I${object.kind} = ${JSON.stringify(object, null, 1)};`;
    });
    writeFileSync(join(scratch, 'manifests.ts'), `${[...imports].join('\n')}\n${lines.join('\n')}\n`);
    const options = { strict: true, noEmit: true, module: 'nodenext', target: 'esnext', skipLibCheck: true, types: [] };
    writeFileSync(
      join(scratch, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: options, files: ['manifests.ts'] }),
    );
    const tsc = join(root, 'node_modules', '.bin', 'tsc');
    const run = spawnSync(tsc, ['-p', join(scratch, 'tsconfig.json')], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.error, undefined, `tsc could not run: ${run.error?.message}`);
    return (run.stdout + run.stderr).split('\n').filter((line) => line.includes('error TS'));
  }

  test('no object has a field its kind does not define', () => {
    assert.deepEqual(typeCheck(objects), []);
  });

  test('the unknown-field check finds a misspelt field', () => {
    const gateway = structuredClone(deployments.find((d) => d.metadata.name === 'gateway') as Manifest);
    gateway.spec.template.spec.containers[0].securityContext.readOnlyRootFS = true;
    const errors = typeCheck([{ file: 'gateway.yaml', object: gateway }]);
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0] ?? '', /readOnlyRootFS/);
  });

  test('each Deployment has replicas, probes on /readyz and /healthz, resources and a locked-down security context', () => {
    for (const deployment of deployments) {
      const name = deployment.metadata.name;
      const pod = deployment.spec.template.spec;
      assert.ok(deployment.spec.replicas >= 1, `${name}: replicas`);
      assert.deepEqual(deployment.spec.selector.matchLabels, { 'app.kubernetes.io/name': name });
      assert.equal(pod.securityContext.runAsNonRoot, true, `${name}: runAsNonRoot`);
      assert.ok(pod.terminationGracePeriodSeconds > 10, `${name}: longer than the 10 s drain`);
      assert.equal(pod.automountServiceAccountToken, false, `${name}: no API token in the pod`);
      for (const container of pod.containers) {
        assert.equal(container.readinessProbe?.httpGet?.path, '/readyz', `${name}: readiness`);
        assert.equal(container.livenessProbe?.httpGet?.path, '/healthz', `${name}: liveness`);
        assert.ok(container.resources?.requests?.cpu && container.resources?.requests?.memory, `${name}: requests`);
        assert.ok(container.resources?.limits?.memory, `${name}: memory limit`);
        const security = container.securityContext;
        assert.equal(security?.readOnlyRootFilesystem, true, `${name}: readOnlyRootFilesystem`);
        assert.equal(security?.allowPrivilegeEscalation, false, `${name}: allowPrivilegeEscalation`);
        assert.deepEqual(security?.capabilities?.drop, ['ALL'], `${name}: capabilities`);
        const port = container.ports?.find((p: Manifest) => p.name === 'http')?.containerPort;
        assert.equal(String(port), containerEnv(container).PORT, `${name}: listens where the probes look`);
      }
    }
  });

  test("every container's env is one its code accepts, as docker-compose.yml's is", async () => {
    const pods = [...deployments, ...byKind('Job')].map((o) => [id(o), o.spec.template.spec] as const);
    for (const [name, pod] of pods) {
      for (const container of pod.containers) {
        const { dir, script } = entryPoint(container);
        for (const proc of await processEnvironments(name, dir, script, containerEnv(container))) {
          assertEnvironmentFits(proc);
        }
      }
    }
  });

  test('Services select a Deployment and autoscalers target one', () => {
    const names = new Set(deployments.map((d) => d.metadata.name));
    for (const service of byKind('Service')) {
      assert.ok(names.has(service.spec.selector['app.kubernetes.io/name']), id(service));
    }
    for (const hpa of byKind('HorizontalPodAutoscaler')) {
      assert.ok(names.has(hpa.spec.scaleTargetRef.name), id(hpa));
      assert.ok(hpa.spec.minReplicas <= hpa.spec.maxReplicas, id(hpa));
    }
  });

  /** True when a label selector (matchLabels and In expressions) selects these labels. */
  function selects(selector: Manifest, labels: Record<string, string>): boolean {
    const exact = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
    const expressions = (selector.matchExpressions ?? []).every(
      (e: Manifest) => e.operator === 'In' && e.values.includes(labels[e.key]),
    );
    return exact && expressions;
  }

  test('NetworkPolicies let only the gateway reach the services, and Prometheus their metrics', () => {
    const policies = byKind('NetworkPolicy');
    const pods = [...deployments, ...byKind('Job')].map((o) => [id(o), o.spec.template.metadata.labels] as const);
    const fromGateway = (peer: Manifest) =>
      peer.namespaceSelector === undefined && peer.podSelector?.matchLabels?.['app.kubernetes.io/name'] === 'gateway';
    const fromPrometheus = (peer: Manifest) =>
      peer.podSelector?.matchLabels?.['app.kubernetes.io/name'] === 'prometheus';
    for (const [name, labels] of pods) {
      const mine = policies.filter((p) => selects(p.spec.podSelector, labels));
      assert.ok(
        mine.some((p) => p.spec.policyTypes.includes('Ingress')),
        `${name}: no NetworkPolicy limits who connects`,
      );
      const rules = mine.flatMap((p) => p.spec.ingress ?? []);
      if (labels['app.kubernetes.io/name'] === 'gateway') {
        assert.ok(
          rules.some((r: Manifest) => r.from === undefined),
          `${name}: clients reach the gateway`,
        );
        continue;
      }
      for (const rule of rules) {
        assert.ok(rule.from?.length > 0, `${name}: a rule lets anyone in`);
        for (const peer of rule.from) {
          assert.ok(fromGateway(peer) || fromPrometheus(peer), `${name}: lets in ${JSON.stringify(peer)}`);
        }
      }
      const service = ['counter', 'jokes', 'images'].includes(labels['app.kubernetes.io/name']);
      assert.equal(
        rules.some((r: Manifest) => r.from.some(fromGateway)),
        service,
        `${name}: the gateway ${service ? 'reaches' : 'does not reach'} it`,
      );
    }
  });

  test('secrets reach the pods only as files, and the database URLs carry no password', () => {
    for (const { object } of objects) {
      if (object.kind === 'Secret') continue;
      const text = JSON.stringify(object);
      assert.doesNotMatch(text, /secretKeyRef/, `${id(object)}: a secret as an env variable`);
      assert.doesNotMatch(text, /postgres:\/\/[^@/"]*:[^@/"]*@/, `${id(object)}: a password in a URL`);
    }
  });
});

describe('infra/k8s/nats-values.yaml', () => {
  test('asks the NATS chart for a 3-node cluster with JetStream on file storage', () => {
    const values = parse(readFileSync(join(base, 'nats-values.yaml'), 'utf8')) as Manifest;
    assert.equal(values.config.cluster.enabled, true);
    assert.equal(values.config.cluster.replicas, 3);
    assert.equal(values.config.jetstream.enabled, true);
    assert.equal(values.config.jetstream.fileStore.enabled, true);
    assert.equal(values.config.jetstream.fileStore.pvc.enabled, true);
    assert.equal(values.config.jetstream.merge.sync_interval, 'always', 'fsync before every PubAck');
    assert.ok(configMap.data.NATS_URL.startsWith('nats://nats:'), 'berth-config points at the release "nats"');
  });
});

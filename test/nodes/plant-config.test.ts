/**
 * The plant nodes' settings and requests without a runtime: the broker URL, TLS files, prefix and gateway id
 * of ble-ota-plant; the rollout node's request routing, waves and campaign defaults; counts from a state.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { defaultGatewayId, parseBrokerUrl, parsePlantSettings } from '../../nodes/ble-ota-plant/plant-config';
import { DEFAULT_WAVES, campaignSpec, parseRequest, parseWaves, type RolloutDefaults } from '../../nodes/ble-ota-rollout/campaign-request';
import { progressOf } from '../../nodes/ble-ota-rollout/campaign-progress';
import type { CampaignState } from '../../lib/plant/messages';
import type { OtaError } from '../../lib/errors';
import { thrownCode } from '../helpers/errors';

const DEFAULTS: RolloutDefaults = { waves: DEFAULT_WAVES, deviceTimeoutMs: 300000, maxConcurrent: 20, abortPercent: 20, confirm: true, encoding: 'auto', maxReassignments: 2 };

describe('ble-ota-plant settings', () => {
  it('takes mqtt, mqtts, ws and wss broker URLs and refuses others, empty ones and URLs with credentials', () => {
    for (const url of ['mqtt://broker:1883', 'mqtts://broker.example:8883', 'ws://10.0.0.5:8080/mqtt', 'wss://broker/mqtt']) assert.equal(parseBrokerUrl(url), url);
    for (const url of ['', 'http://broker', 'broker:1883', 'mqtt://', 'tcp://broker:1883']) assert.equal(thrownCode(() => parseBrokerUrl(url)), 'PLANT_BAD_URL', url);
    assert.throws(() => parseBrokerUrl('mqtt://user:secret@broker'), (err: OtaError) => err.code === 'PLANT_BAD_URL' && !err.message.includes('secret'));
    assert.throws(() => parseBrokerUrl('mqtt//user:secret@broker'), (err: OtaError) => err.code === 'PLANT_BAD_URL' && !err.message.includes('secret'));
  });

  it('checks the prefix and the gateway id with the topic rules, and derives the default id from the host name', () => {
    const base = { broker: 'mqtt://localhost:1883' };
    assert.equal(parsePlantSettings(base, {}, 'Line-3.Plant').prefix, 'ble-ota/plant');
    assert.equal(parsePlantSettings(base, {}, 'Line-3.Plant').gatewayId, 'line-3.plant');
    assert.equal(parsePlantSettings({ ...base, gatewayId: 'gw-a', prefix: 'acme/ota' }, {}).gatewayId, 'gw-a');
    for (const prefix of ['a/+/b', '/abs', 'trailing/', 'a//b', 'x#']) assert.equal(thrownCode(() => parsePlantSettings({ ...base, prefix }, {})), 'PLANT_BAD_ID', prefix);
    for (const gatewayId of ['gw/1', 'gw+', 'g'.repeat(65), 'two words']) assert.equal(thrownCode(() => parsePlantSettings({ ...base, gatewayId }, {})), 'PLANT_BAD_ID', gatewayId);
    assert.equal(defaultGatewayId('???'), 'gateway');
    assert.equal(defaultGatewayId('Büro PC'), 'b-ro-pc');
  });

  it('keeps username and password from the credentials only, and checks slots and scan periods', () => {
    const s = parsePlantSettings({ broker: 'mqtt://localhost:1883', slots: '4', scanWindow: '1', scanEvery: '3' }, { username: 'line', password: 'pw' });
    assert.deepEqual([s.username, s.password, s.slots, s.scanWindowMs, s.scanEveryMs, s.sightingsEveryMs], ['line', 'pw', 4, 1000, 3000, 5000]);
    assert.equal(parsePlantSettings({ broker: 'mqtt://localhost:1883' }, undefined).slots, null);
    assert.equal(thrownCode(() => parsePlantSettings({ broker: 'mqtt://h', slots: '0' }, {})), 'BAD_OPTION');
    assert.equal(thrownCode(() => parsePlantSettings({ broker: 'mqtt://h', scanWindow: '9', scanEvery: '5' }, {})), 'BAD_OPTION');
  });

  it('reads TLS files or an inline PEM, and refuses an unreadable file or a certificate without its key', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plant-tls-'));
    const pem = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    fs.writeFileSync(path.join(dir, 'ca.pem'), pem);
    const fromFile = parsePlantSettings({ broker: 'mqtts://h:8883', tlsCa: path.join(dir, 'ca.pem') }, {});
    assert.equal(String(fromFile.tls?.ca), pem);
    assert.equal(fromFile.tls?.rejectUnauthorized, true);
    assert.equal(String(parsePlantSettings({ broker: 'mqtts://h', tlsCa: pem }, {}).tls?.ca), pem);
    assert.equal(parsePlantSettings({ broker: 'mqtts://h', tlsRejectUnauthorized: false }, {}).tls?.rejectUnauthorized, false);
    assert.equal(parsePlantSettings({ broker: 'mqtt://h' }, {}).tls, undefined);
    assert.equal(thrownCode(() => parsePlantSettings({ broker: 'mqtts://h', tlsCa: path.join(dir, 'missing.pem') }, {})), 'PLANT_TLS_UNREADABLE');
    assert.equal(thrownCode(() => parsePlantSettings({ broker: 'mqtts://h', tlsCert: path.join(dir, 'ca.pem') }, {})), 'PLANT_TLS_UNREADABLE');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('ble-ota-rollout requests', () => {
  it('routes by the last topic level, or by a payload with an image', () => {
    assert.equal(parseRequest({ topic: 'ble-ota/plant/v1/rollouts/start', payload: { image: { sha256: 'a' }, target: {} } }, DEFAULTS).kind, 'start');
    assert.equal(parseRequest({ payload: '{"image": {"sha256": "a"}, "target": {}}' }, DEFAULTS).kind, 'start');
    assert.deepEqual(parseRequest({ topic: 'pause', payload: { campaign: 'c1', reason: 'shift change' } }, DEFAULTS), { kind: 'control', action: 'pause', campaign: 'c1', reason: 'shift change' });
    assert.deepEqual(parseRequest({ topic: 'x/rollouts/cancel', payload: 'c2' }, DEFAULTS), { kind: 'control', action: 'cancel', campaign: 'c2' });
    assert.deepEqual(parseRequest({ topic: 'resume', payload: Buffer.from('{"campaign":"c3"}') }, DEFAULTS), { kind: 'control', action: 'resume', campaign: 'c3' });
    assert.deepEqual(parseRequest({ topic: 'status', payload: {} }, DEFAULTS), { kind: 'status' });
    assert.deepEqual(parseRequest({ topic: 'status', payload: { campaign: 'c1' } }, DEFAULTS), { kind: 'status', campaign: 'c1' });
  });

  it('refuses unknown topics, controls without a campaign id, and start requests without a campaign object', () => {
    assert.equal(thrownCode(() => parseRequest({ topic: 'reboot', payload: {} }, DEFAULTS)), 'ROLLOUT_BAD_REQUEST');
    assert.equal(thrownCode(() => parseRequest({ topic: 'pause', payload: {} }, DEFAULTS)), 'ROLLOUT_BAD_REQUEST');
    assert.equal(thrownCode(() => parseRequest({ topic: 'start', payload: 'go' }, DEFAULTS)), 'ROLLOUT_BAD_REQUEST');
    assert.equal(thrownCode(() => parseRequest({ topic: 'start', payload: '{broken' }, DEFAULTS)), 'ROLLOUT_BAD_REQUEST');
  });

  it('fills a start request with the node settings, the payload winning, and the abort percentage on waves without their own', () => {
    const spec = campaignSpec({ image: { sha256: 'a' }, target: {}, maxConcurrent: 5, waves: [{ count: 2, maxFailures: 1 }, { percent: 100 }] }, DEFAULTS);
    assert.equal(spec.maxConcurrent, 5);
    assert.equal(spec.deviceTimeoutMs, 300000);
    assert.deepEqual(spec.waves, [{ count: 2, maxFailures: 1 }, { percent: 100, maxFailurePercent: 20 }]);
    assert.deepEqual(campaignSpec({ image: { sha256: 'a' }, target: {} }, { ...DEFAULTS, abortPercent: 100 }).waves, DEFAULT_WAVES);
  });

  it('reads the waves setting and names a bad wave', () => {
    assert.deepEqual(parseWaves([{ count: '1' }, { percent: 25 }, { percent: '100' }]), [{ count: 1 }, { percent: 25 }, { percent: 100 }]);
    assert.deepEqual(parseWaves(''), DEFAULT_WAVES);
    assert.throws(() => parseWaves([{ count: 0 }]), /wave 1: the count/);
    assert.throws(() => parseWaves([{ count: 1 }, { percent: 150 }]), /wave 2: the percentage/);
    assert.throws(() => parseWaves([{ count: 1, percent: 5 }]), /either a device count or a percentage/);
    assert.equal(thrownCode(() => parseWaves([])), 'BAD_OPTION');
  });

  it('counts a campaign state by device state', () => {
    const device = (state: string) => ({ state }) as unknown as CampaignState['devices'][number];
    const state = { id: 'c1', state: 'running', currentWave: 1, devices: [device('succeeded'), device('succeeded'), device('failed'), device('pending')] } as unknown as CampaignState;
    const progress = progressOf(state, 42);
    assert.deepEqual([progress.campaign, progress.total, progress.wave, progress.at, progress.counts.succeeded, progress.counts.failed, progress.counts.pending, progress.counts.skipped], ['c1', 4, 1, 42, 2, 1, 1, 0]);
  });
});

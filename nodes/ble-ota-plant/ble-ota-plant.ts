/**
 * ble-ota-plant (config node): the plant's MQTT broker (URL, username and password as credentials: never in
 * the flow JSON, never logged; TLS files), the topic prefix and this runtime's gateway id. With an adapter
 * (ble-ota-adapter) the runtime is a gateway: it runs a GatewayAgent on that adapter. Rollout nodes share its
 * one broker connection (PlantConnection).
 */
import { randomBytes } from 'crypto';
import type { NodeAPI, NodeDef } from '../shared/node-red';
import type { PlantNode } from './plant-node';
import { PlantConnection } from './plant-connection';
import { parsePlantSettings, type PlantSettings } from './plant-config';
import { GatewayRole } from './gateway-role';
import { COORDINATOR_MAX_PAYLOAD_BYTES, connectMqttBus, type BusWill } from '../shared/plant-library';
import { findAdapter } from '../shared/adapter-user';
import { toOtaError } from '../../lib/errors';
import { translator } from '../shared/i18n';

/** The broker's address for log lines: scheme, host and port only. */
function brokerLabel(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return 'broker';
  }
}

export = function (RED: NodeAPI) {
  function BleOtaPlantNode(this: PlantNode, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const t = translator(RED, 'ble-ota-plant');
    let settings: PlantSettings | null = null;
    this.configError = null;
    try {
      settings = parsePlantSettings(def, this.credentials);
    } catch (err) {
      this.configError = toOtaError(err, 'BAD_OPTION');
      this.error(t('errors.config', { message: this.configError.message }));
    }
    this.settings = settings;
    const adapterNode = settings ? findAdapter(RED, def.adapter) : null;
    if (settings && def.adapter && !adapterNode) this.warn(t('log.adapterMissing'));
    this.gateway = settings && adapterNode ? new GatewayRole(this.id, settings, adapterNode.connection, (level, text) => (level === 'error' ? this.error(text) : level === 'warn' ? this.warn(text) : this.log(text))) : null;
    const will: BusWill | undefined = this.gateway?.will();
    // A gateway keeps one client id, so its restart takes over the old session (whose will fires before the
    // new "online"); rollout-only runtimes get a fresh one each time.
    const clientId = settings ? (this.gateway ? `ble-ota-gw-${settings.gatewayId}` : `ble-ota-${settings.gatewayId}-${randomBytes(4).toString('hex')}`) : '';
    const label = settings ? brokerLabel(settings.url) : 'plant broker';
    this.connection = new PlantConnection({
      label,
      configError: this.configError,
      keepOpen: this.gateway !== null,
      log: (text) => this.log(text),
      open: () => {
        if (!settings) return Promise.reject(this.configError);
        return connectMqttBus({
          url: settings.url,
          clientId,
          ...(settings.username ? { username: settings.username } : {}),
          ...(settings.password ? { password: settings.password } : {}),
          ...(settings.tls ? { tls: settings.tls } : {}),
          ...(will ? { will } : {}),
          // One connection serves the gateway and the rollout node: a campaign's retained record may reach 4 MiB.
          maxPayloadBytes: COORDINATOR_MAX_PAYLOAD_BYTES,
        });
      },
    });
    if (this.gateway) {
      this.log(t('log.gateway', { gateway: settings?.gatewayId ?? '', broker: label, slots: this.gateway.slots }));
      this.gateway.attach(this.connection);
    }

    this.on('close', (_removed, done) => {
      const gateway = this.gateway;
      (gateway ? gateway.stop() : Promise.resolve())
        .catch((err) => this.warn(t('errors.close', { message: toOtaError(err).message })))
        .then(() => this.connection.close())
        .then(
          () => done(),
          (err) => {
            this.warn(t('errors.close', { message: toOtaError(err).message }));
            done();
          },
        );
    });
  }

  RED.nodes.registerType('ble-ota-plant', BleOtaPlantNode, {
    credentials: { username: { type: 'text' }, password: { type: 'password' } },
  });
};

/** ProtocolSession for devices running the seed firmware (lib/protocol's legacy client). */
import type { BleConnection } from '../ble/central';
import { OtaError } from '../errors';
import type { ProtocolSession } from './protocol-session';
import type { SessionContext } from './protocols';

export function createLegacySession(_link: BleConnection, _ctx: SessionContext): ProtocolSession {
  throw new OtaError('PROTOCOL_UNSUPPORTED', 'the legacy (seed) protocol client is not available in this build');
}

/**
 * Devices are secure by default (PROTOCOL.md §E): without keys they refuse updates. Tests about the update
 * itself, not about who may start one, run a development build instead, said explicitly here.
 */
import type { SimDeviceConfig } from '../../lib/sim/types';

/** The config as a development build (allowUnauthenticated) unless it has keys or says otherwise. */
export function devBuild<T extends Partial<SimDeviceConfig>>(config: T): T {
  const keyed = config.deviceKey !== undefined || config.fleetKey !== undefined || (config.releaseKeys?.length ?? 0) > 0;
  return { allowUnauthenticated: !keyed, ...config };
}

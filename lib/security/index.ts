/** Update security (docs/SECURITY.md): signed manifests, release and session keys, host checks before BEGIN. */
export * from './device-id';
export * from './keys';
export * from './manifest';
export * from './release';
export * from './check';

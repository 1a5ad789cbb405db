/** lib/ota: the library's public operations (flash, verify, scan, status) on an AdapterScheduler. */
export { flashDevice } from './flash';
export { verifyDevice, readDeviceStatus, judgeStatus } from './verify';
export { rollbackDevice } from './rollback';
export type { RollbackOptions, RollbackResult } from './rollback';
export type { StatusReport } from './verify';
export { scanDevices, describeDevice } from './scan';
export type { ScanFilters, ScannedDevice } from './scan';
export { ProgressTracker } from './progress';
export { backoffDelay, isRetryable, DEFAULT_BACKOFF } from './retry';
export * from './types';

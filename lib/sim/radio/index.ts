export { createSimRadio, SimRadio, HCI_REASON, peripheralId, type GattTrafficEvent, type AddCentralOptions, type SimRadioOptions, type DeviceRadioOptions, type RadioStats, type DeviceRadioStats } from './sim-radio';
export { SimBindings } from './noble-bindings';
export { LinkLayer, type LinkStats, type DirectionStats } from './link-layer';

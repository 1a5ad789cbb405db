export { createSimRadio, SimRadio, HCI_REASON, peripheralId, type GattTrafficEvent, type AddCentralOptions, type SimRadioOptions, type DeviceRadioOptions, type RadioStats, type DeviceRadioStats, DEFAULT_DEVICE_RX_BUFFERS } from './sim-radio';
export { LinkLayer, type LinkStats, type DirectionStats, type Pdu } from './link-layer';

/** The plant simulator (docs/PLANT-SIM.md): several gateway processes on one simulated air. */
export { PlantSim, type PlantDeviceInfo, type PlantGatewayInfo, type PlantStartOptions } from './plant-sim';
export { parsePlantLayout, type PlantLayout, type PlantDeviceLayout } from './layout';
export { createRemotePlantCentral, RemoteHciTransport, type RemotePlantCentral, type RemotePlantOptions } from './remote-hci';
export { PlantControlClient, runPlantCommand, type PlantCommand } from './control-server';
export { parsePlantAddress } from './wire';
export { generatePlantLayout, type GeneratePlantLayoutOptions } from './generate';

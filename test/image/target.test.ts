import * as assert from 'assert';
import { buildAppImage, checkImageForTarget, parseImage, validateAppImage } from '../../lib/image';
import type { TargetInfo } from '../../lib/image';
import { expectOtaError, readVector } from './helpers';

describe('image: checks against a target device', () => {
  const image = buildAppImage({ chip: 'esp32c3', version: 'v1.4.0', secureVersion: 2, size: 64 * 1024, minChipRevFull: 3, maxChipRevFull: 199 });
  const parsed = validateAppImage(image);
  const device: TargetInfo = { chip: 'esp32c3', chipRevision: 4, partitionSize: 0x1e0000, runningSecureVersion: 2, runningVersion: 'v1.3.9', preventDowngrade: true };

  it('accepts a matching image and returns it', () => {
    assert.strictEqual(checkImageForTarget(parsed, device), parsed);
    assert.strictEqual(checkImageForTarget(image, device).appDesc?.version, 'v1.4.0');
  });

  it('WRONG_CHIP names both chips', () => {
    const err = expectOtaError(() => checkImageForTarget(parsed, { ...device, chip: 'esp32s3' }), 'WRONG_CHIP');
    assert.match(err.message, /esp32c3/);
    assert.match(err.message, /esp32s3/);
  });

  it('IMAGE_TOO_LARGE when the image does not fit the partition; an exact fit passes', () => {
    const err = expectOtaError(() => checkImageForTarget(parsed, { ...device, partitionSize: image.length - 1 }), 'IMAGE_TOO_LARGE');
    assert.match(err.message, new RegExp(`${image.length} bytes`));
    assert.match(err.message, /1 bytes too many/);
    checkImageForTarget(parsed, { ...device, partitionSize: image.length });
  });

  it('DOWNGRADE when secure_version is lower than the running one, whatever the policy', () => {
    const err = expectOtaError(() => checkImageForTarget(parsed, { ...device, runningSecureVersion: 3, preventDowngrade: false }), 'DOWNGRADE');
    assert.match(err.message, /security version is 2, lower than the device's 3/);
  });

  it('DOWNGRADE for a semantically older version only when preventDowngrade is set', () => {
    const err = expectOtaError(() => checkImageForTarget(parsed, { ...device, runningVersion: '1.10.0' }), 'DOWNGRADE');
    assert.match(err.message, /v1\.4\.0 is older than the running version 1\.10\.0/);
    checkImageForTarget(parsed, { ...device, runningVersion: '1.10.0', preventDowngrade: false });
    checkImageForTarget(parsed, { ...device, runningVersion: 'v1.4.0' }); // same version: a reinstall
    checkImageForTarget(parsed, { ...device, runningVersion: '1.4.0-rc2' }); // release after its prerelease
  });

  it('lets versions that cannot be ordered pass the policy', () => {
    checkImageForTarget(parsed, { ...device, runningVersion: '6970792-dirty' });
    const hashVersioned = buildAppImage({ chip: 'esp32c3', version: 'bc43c6b', size: 16 * 1024 });
    checkImageForTarget(hashVersioned, { ...device, runningSecureVersion: 0, runningVersion: 'v9.9.9' });
  });

  it('CHIP_REVISION_UNSUPPORTED below the minimum and above the maximum revision', () => {
    const low = expectOtaError(() => checkImageForTarget(parsed, { ...device, chipRevision: 2 }), 'CHIP_REVISION_UNSUPPORTED');
    assert.match(low.message, /v0\.2 is outside the range this image supports \(v0\.3 to v1\.99\)/);
    expectOtaError(() => checkImageForTarget(parsed, { ...device, chipRevision: 200 }), 'CHIP_REVISION_UNSUPPORTED');
    checkImageForTarget(parsed, { ...device, chipRevision: 3 });
    checkImageForTarget(parsed, { ...device, chipRevision: 199 });
  });

  it('reads the revision range of real images: ESP32 hello_world allows up to v3.99, a zero maximum means none', () => {
    const esp32 = validateAppImage(readVector('esp32-hello_world.bin'));
    const esp32Device: TargetInfo = { chip: 'esp32', partitionSize: 0x100000 };
    checkImageForTarget(esp32, { ...esp32Device, chipRevision: 301 });
    expectOtaError(() => checkImageForTarget(esp32, { ...esp32Device, chipRevision: 400 }), 'CHIP_REVISION_UNSUPPORTED');
    const c3 = validateAppImage(readVector('esp32c3-hello_world.bin'));
    checkImageForTarget(c3, { chip: 'esp32c3', chipRevision: 1000, partitionSize: 0x100000 });
  });

  it('refuses an invalid image and bad target descriptions with clear codes', () => {
    expectOtaError(() => checkImageForTarget(parseImage(readVector('bad-esp32c3-bootloader.bin')), device), 'BOOTLOADER_IMAGE');
    expectOtaError(() => checkImageForTarget(Buffer.alloc(0), device), 'EMPTY_IMAGE');
    expectOtaError(() => checkImageForTarget(parsed, { ...device, chip: 'esp8266' as never }), 'BAD_TARGET');
    expectOtaError(() => checkImageForTarget(parsed, { ...device, partitionSize: -5 }), 'BAD_TARGET');
  });
});

# Seed 004's device_simulator.py ("Setting up a Simulated IoT Device (Python)"), copied as the
# seed wrote it; only the two azure.iot.device import lines now name tether.azure.
# tests/test_azure_client.py runs it against the emulator with its config.json.
# Kept byte-for-byte as the seed wrote it, so neither linted nor formatted:
# ruff: noqa
# fmt: off
import asyncio
import json
import random
from datetime import datetime
from tether.azure.aio import ProvisioningDeviceClient, IoTHubDeviceClient
from tether.azure import X509

async def main():
    print("=== IoT Device Simulator with X.509 ===\n")
    
    # Load configuration
    with open("config.json") as f:
        config = json.load(f)
    
    # Create X.509 object
    x509 = X509(
        cert_file=config["cert_file"],
        key_file=config["key_file"]
    )
    
    print(f"Certificate loaded from: {config['cert_file']}")
    print(f"Registration ID: {config['registration_id']}\n")
    
    # Provision through DPS
    device_client = await provision_device(
        config["provisioning_host"],
        config["id_scope"],
        config["registration_id"],
        x509
    )
    
    # Send telemetry
    await send_telemetry(device_client)
    
    # Cleanup
    await device_client.disconnect()

async def provision_device(provisioning_host, id_scope, registration_id, x509):
    print("=== Starting DPS Provisioning ===")
    print(f"Host: {provisioning_host}")
    print(f"ID Scope: {id_scope}")
    print(f"Registration ID: {registration_id}\n")
    
    # Create provisioning client
    provisioning_client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=provisioning_host,
        registration_id=registration_id,
        id_scope=id_scope,
        x509=x509
    )
    
    # Register with DPS
    print("Registering with DPS...")
    registration_result = await provisioning_client.register()
    
    print(f"Status: {registration_result.status}")
    print(f"Assigned Hub: {registration_result.registration_state.assigned_hub}")
    print(f"Device ID: {registration_result.registration_state.device_id}\n")
    
    if registration_result.status != "assigned":
        raise Exception(f"Provisioning failed: {registration_result.status}")
    
    # Create device client for IoT Hub
    print("=== Connecting to IoT Hub ===")
    device_client = IoTHubDeviceClient.create_from_x509_certificate(
        hostname=registration_result.registration_state.assigned_hub,
        device_id=registration_result.registration_state.device_id,
        x509=x509
    )
    
    await device_client.connect()
    print("Connected to IoT Hub!\n")
    
    return device_client

async def send_telemetry(device_client):
    print("=== Sending Telemetry ===")
    
    for i in range(1, 11):
        telemetry = {
            "temperature": 20 + random.random() * 10,
            "humidity": 60 + random.random() * 20,
            "timestamp": datetime.utcnow().isoformat()
        }
        
        message_json = json.dumps(telemetry)
        await device_client.send_message(message_json)
        
        print(f"[{i}] Sent: Temp={telemetry['temperature']:.1f}°C, "
              f"Humidity={telemetry['humidity']:.1f}%")
        
        await asyncio.sleep(5)
    
    print("\nTelemetry complete!")

if __name__ == "__main__":
    asyncio.run(main())

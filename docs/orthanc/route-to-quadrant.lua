-- Orthanc: send each chest radiograph it stores to the Quadrant node, the DICOM modality named "quadrant"
-- in the configuration (see orthanc.json beside this file). Quadrant's results come back as new SR and OT
-- series of the same study; they are neither CR nor DX, so they are never routed back.
function OnStoredInstance(instanceId, tags, metadata, origin)
   local modality = tags['Modality']
   local bodyPart = string.upper(tags['BodyPartExamined'] or 'CHEST')
   if (modality == 'CR' or modality == 'DX') and bodyPart == 'CHEST' then
      SendToModality(instanceId, 'quadrant')
   end
end
